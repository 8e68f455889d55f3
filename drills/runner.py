"""Run one drill: check the stack is there, switch the flags (or stop a service), drive
traffic, watch each signal turn green, then stop the traffic and put the flags back.

Nothing is changed before the flag file has been read and every component the
drill needs has answered, so a drill that cannot run leaves the stack as it was.
The flags come back however the run ends (see `flagfile.switched_flags`); the
traffic generator is stopped before that, so its last requests see the drill's
flags, not a mix.

A drill that stops a service (`Drill.stops`) starts it again however the run ends
too (`outage.stopped_service`). Normally that is once its signals have responded,
while the traffic still runs, and the drill then waits for the signals of the
service's return.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from stackclient import Api, ApiError, Component, wait_until
from verify.context import ROOT
from verify.model import Failed

from .catalogue import Drill, Plan, Signal
from .context import DrillContext, Reading, not_yet
from .flagfile import (
    FlagFile,
    FlagFileError,
    read_flag_file,
    switched_flags,
    write_atomically,
)
from .outage import (
    COMPOSE_FILES,
    CommandControl,
    OutageError,
    ServiceControl,
    compose_command,
    stopped_service,
)
from .settings import URL_OPTIONS, DrillSettings
from .traffic import FRONTEND, Traffic

__all__ = ["EXIT_GAVE_UP", "EXIT_OK", "DrillError", "Outcome", "run_drill"]

EXIT_OK, EXIT_GAVE_UP = 0, 1
STATUS_EVERY = 30.0
"""Seconds between two "still waiting for" lines."""

READY_PATHS = {
    # need: (URL field, name, a path that answers once it runs)
    "service": ("service_url", "the dice roller", "/"),
    "frontend": ("frontend_url", "the frontend", "/"),
    "prometheus": ("prometheus_url", "Prometheus", "/-/ready"),
    "loki": ("loki_url", "Loki", "/ready"),
    "tempo": ("tempo_url", "Tempo", "/ready"),
    "alertmanager": ("alertmanager_url", "Alertmanager", "/-/ready"),
}


class DrillError(Exception):
    """The drill cannot start (flag file, stack); the message says what to do."""


@dataclass(frozen=True)
class Outcome:
    """How a drill ended: the signals that responded, and those that never did."""

    responded: list[tuple[Signal, Reading, float]]
    missing: list[tuple[Signal, str]]
    seconds: float
    """How long the signals were waited for."""


def _option_for(field: str) -> str:
    for option, (name, env, _) in URL_OPTIONS.items():
        if name == field:
            return f"{option} (or {env})"
    return field


def check_stack(api: Api, settings: DrillSettings, needs: tuple[str, ...], stage: int = 1) -> None:
    """Raise DrillError naming every component of `needs` that cannot be reached (the
    stack of `stage`, which the message says how to start)."""
    problems, options = [], []
    for need in needs:
        field, name, path = READY_PATHS[need]
        component = Component(name, getattr(settings, field))
        try:
            api.request(component, "GET", path, ok=tuple(range(200, 600)))
        except ApiError as error:
            problems.append(str(error))
            options.append(_option_for(field))
    if problems:
        if stage >= 3:
            files = "".join(f" -f {name}" for name in COMPOSE_FILES[5 if stage >= 5 else 3])
            start = f"`docker compose{files} up -d`, or "
            start += f"`sudo python3 tasks.py nativestack --stage {stage}`"
        elif "frontend" in needs or stage == 2:
            start = "`docker compose --profile stage2 up -d`, or `sudo python3 tasks.py "
            start += "nativestack --stage 2`"
        else:
            start = "`docker compose up -d`, or `sudo python3 tasks.py nativestack`"
        raise DrillError(
            "cannot start the drill: "
            + "; ".join(problems)
            + f". Start the stack ({start}), "
            + f"or point {', '.join(options)} at it"
        )


class Printer:
    """Lines for the user, with check marks where the terminal can show them."""

    def __init__(self, out: TextIO, started: Callable[[], float]) -> None:
        self.out = out
        self.started = started
        try:
            "✓✗…→".encode(out.encoding or "ascii")
            self.ok, self.missing, self.dots = "✓", "✗", "…"
        except (UnicodeEncodeError, LookupError):
            self.ok, self.missing, self.dots = "+", "x", "..."

    def __call__(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def clock(self) -> str:
        seconds = max(0, int(time.time() - self.started()))
        return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60:02d} s"


def _dashboard_title(path: Path) -> str:
    try:
        title = json.loads(path.read_text(encoding="utf-8")).get("title")
    except (OSError, ValueError, AttributeError):
        title = None
    return f'dashboard "{title}"' if title else "the dashboard"


def describe(
    drill: Drill,
    plan: Plan,
    settings: DrillSettings,
    flags: FlagFile | None,
    control: ServiceControl | None = None,
) -> list[str]:
    """What the drill does and where to look, before it starts waiting."""
    look = drill.look
    lines = [f"Drill {drill.name}: {drill.summary}.", ""]
    if flags is not None:
        for key, variant in plan.flags.items():
            was = flags.default_variant(key)
            change = f"{was} -> {variant}" if was != variant else f"{variant} (already)"
            lines.append(f"Flag {key}: {change}  ({flags.path})")
        current = {**{key: flags.default_variant(key) for key in plan.flags}, **plan.flags}
        for step in plan.then:
            for key, variant in step.flags.items():
                was = current.get(key) or flags.default_variant(key)
                lines.append(f"Then flag {key}: {was} -> {variant}")
                current[key] = variant
        if plan.back and drill.stops is None:
            lines.append(
                "Then puts the flags back, the traffic still running, and waits for the return"
            )
    if drill.stops is not None and control is not None:
        lines.append(
            f"Stops the {drill.stops}: {control.describe('stop', drill.stops)}; starts it "
            f"again at the end: {control.describe('start', drill.stops)}"
        )
    lines += [
        "",
        "Where to look:",
        f"  Grafana  {settings.grafana_url}, {_dashboard_title(look.dashboard)}, panels "
        + ", ".join(f'"{title}"' for title in look.panels),
        f"  LogQL    {look.logql}",
        f"  TraceQL  {look.traceql}",
    ]
    if look.alerts:
        lines.append(
            f"  Alerts   {', '.join(look.alerts)}: Grafana > Alerting > Alert rules, "
            f"or Alertmanager {settings.alertmanager_url}"
        )
    lines += ["", f"Lesson: {drill.lesson}"]
    lines += [f"Note: {note}" for note in plan.notes]
    return lines


def wait_for(signals: list[Signal], ctx: DrillContext, give_up: float, say: Printer) -> Outcome:
    """Probe every pending signal each round, print each as it responds, until all
    have or `give_up` seconds have passed."""
    pending = list(signals)
    responded: list[tuple[Signal, Reading, float]] = []
    last: dict[str, str] = {signal.name: "not probed yet" for signal in signals}
    next_status = time.monotonic() + STATUS_EVERY

    def probe_round() -> bool | None:
        """True once every signal has responded."""
        nonlocal next_status
        ctx.api.retry_unreachable()
        for signal in list(pending):
            reading = _probe(signal, ctx)
            if reading.responded:
                pending.remove(signal)
                responded.append((signal, reading, ctx.elapsed()))
                say(f"  {say.ok} {say.clock()}  {signal.name} ({signal.source}): {reading.detail}")
            else:
                last[signal.name] = reading.detail
        now = time.monotonic()
        if pending and now >= next_status:
            names = ", ".join(signal.name for signal in pending)
            say(f"  {say.dots} {say.clock()}  waiting for: {names}")
            next_status = now + STATUS_EVERY
        return None if pending else True

    wait_until(probe_round, give_up, ctx.settings.poll)
    missing = [(signal, last[signal.name]) for signal in pending]
    return Outcome(responded, missing, ctx.elapsed())


def _probe(signal: Signal, ctx: DrillContext) -> Reading:
    """The signal's reading; a component's error (or a probe's bug) reads as "not yet"."""
    try:
        return signal.probe(ctx)
    except (ApiError, Failed) as error:
        return not_yet(str(error))
    except Exception as error:  # a probe's own bug must not cost the user their flags
        return not_yet(f"the probe failed: {type(error).__name__}: {error}")


def run_drill(
    drill: Drill,
    settings: DrillSettings,
    out: TextIO = sys.stdout,
    control: ServiceControl | None = None,
) -> int:
    """Run `drill`; its exit code. Raises DrillError when it cannot start, or when the
    service it stopped could not be started again.

    `control` stops and starts the service of a drill that stops one; by default, the
    commands of `settings` (`docker compose stop` and `start`), run from the repository.
    """
    flags = None
    if drill.flags:
        flags = _read_flags(settings.flags_file, {} if drill.keeps_flags else drill.flags)
    if control is None:
        control = CommandControl(
            settings.stop_command or compose_command("stop", drill.stage),
            settings.start_command or compose_command("start", drill.stage),
            ROOT,
        )
    api = Api(timeout=settings.timeout)
    try:
        check_stack(api, settings, drill.needs, drill.stage)
        ctx = DrillContext(settings, api)
        try:
            plan = drill.plan(ctx)
            if flags is not None:
                for choices in (plan.flags, *(step.flags for step in plan.then)):
                    flags.with_defaults(choices)  # every flag and variant exists, or stop here
        except (ApiError, Failed) as error:
            raise DrillError(f"cannot start the drill: {error}") from None
        except FlagFileError as error:
            raise DrillError(str(error)) from None
        say = Printer(out, lambda: ctx.started)
        for line in describe(drill, plan, settings, flags, control):
            say(line)
        if plan.done is not None:
            say("")
            say(plan.done)
            return EXIT_OK
        try:
            return _run(drill, plan, ctx, flags, say, control)
        except (FlagFileError, OutageError) as error:
            raise DrillError(str(error)) from None
    finally:
        api.close()


def _read_flags(path: Path, choices: Mapping[str, str]) -> FlagFile:
    """The flag file, checked to have every flag and variant of `choices`."""
    try:
        flags = read_flag_file(path)
        flags.with_defaults(choices)
        return flags
    except FlagFileError as error:
        raise DrillError(
            f"{error}. Point --flags-file (or DRILL_FLAGS_FILE) at the flag file the service "
            "reads (its DICE_FLAGS_FILE; under compose, stack/flags/flags.json)"
        ) from None


def _run(
    drill: Drill,
    plan: Plan,
    ctx: DrillContext,
    flags: FlagFile | None,
    say: Printer,
    control: ServiceControl,
) -> int:
    settings = ctx.settings
    url = settings.frontend_url if drill.traffic == FRONTEND else settings.service_url
    traffic = Traffic(
        settings.traffic_script, url, settings.rate, settings.round_seconds, drill.traffic
    )
    ctx.traffic = traffic
    give_up = settings.give_up if settings.give_up is not None else plan.give_up

    switching: AbstractContextManager[object] = nullcontext()
    steps: list[AbstractContextManager[object]] = []
    if flags is not None and drill.keeps_flags:
        if plan.flags:
            try:
                write_atomically(flags.path, flags.with_defaults(plan.flags))
            except OSError as error:
                raise FlagFileError(f"cannot write the flag file {flags.path}: {error}") from None
    elif flags is not None:
        path = flags.path

        def restored(kept: Path | None) -> None:
            ctx.resumed = time.time()
            if kept is not None:
                say(f"The flag file changed during the drill: that version is kept in {kept}.")
            say(f"Flags put back: {path} holds its original bytes again.")

        switching = switched_flags(path, plan.flags, on_restore=restored)
        # Each step switches over the one before, and puts back what that one wrote.
        steps = [switched_flags(path, step.flags) for step in plan.then]
    with ExitStack() as undo:
        flags_back = undo.enter_context(ExitStack())
        flags_back.enter_context(switching)
        outage = None
        if drill.stops is not None:
            service = drill.stops

            def started() -> None:
                ctx.resumed = time.time()
                say(f"Started the {service} again: {control.describe('start', service)}")

            say("")
            say(f"Stopping the {service}: {control.describe('stop', service)}")
            outage = undo.enter_context(stopped_service(control, service, started))
        ctx.started = time.time()
        say("")
        say(f"Traffic: {traffic.describe()}")
        say(
            f"Waiting up to {_duration(give_up)} for {len(plan.signals)} signals "
            f"(Ctrl-C stops and {drill.undone()}):"
        )
        undo.callback(traffic.stop)  # first of all: before the flags or the service
        traffic.start()
        outcome = wait_for(plan.signals, ctx, give_up, say)
        for step, switch in zip(plan.then, steps, strict=True):
            say("")
            say(step.says)
            flags_back.enter_context(switch)
            patience = step.give_up if settings.give_up is None else settings.give_up
            say(f"Waiting up to {_duration(patience)} for {len(step.signals)} signals:")
            more = wait_for(step.signals, ctx, patience, say)
            outcome = Outcome(
                outcome.responded + more.responded, outcome.missing + more.missing, more.seconds
            )
        if plan.back:
            say("")
            if outage is not None:
                outage.end()
            else:
                flags_back.close()  # the flags back, the traffic still running
            patience = plan.back_give_up if settings.give_up is None else settings.give_up
            say(f"Waiting up to {_duration(patience)} for {len(plan.back)} signals of its return:")
            back = wait_for(plan.back, ctx, patience, say)
            outcome = Outcome(
                outcome.responded + back.responded, outcome.missing + back.missing, back.seconds
            )
    if drill.keeps_flags and plan.flags and flags is not None:
        say(f"Flags stay at their shipped variants in {flags.path}.")
    return _report(drill, outcome, ctx, say)


def _report(drill: Drill, outcome: Outcome, ctx: DrillContext, say: Printer) -> int:
    say("")
    took = _duration(outcome.seconds)
    if not outcome.missing:
        say(f"Every signal responded ({len(outcome.responded)}), in {took}.")
        if not drill.keeps_flags and drill.look.alerts:
            say(
                "Alerts keep firing until their windows forget the drill: watch them resolve "
                "with `python3 tasks.py drill recovery`."
            )
        return EXIT_OK
    count = len(outcome.missing)
    say(f"Gave up after {took}: {count} signal{'s' if count > 1 else ''} never responded:")
    for signal, detail in outcome.missing:
        say(f"  {say.missing} {signal.name} ({signal.source}): {detail}")
        if signal.hint:
            say(f"      {signal.hint}")
    return EXIT_GAVE_UP
