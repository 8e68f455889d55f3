#!/usr/bin/env python3
"""The project's commands, runnable on a fresh machine with nothing but Python 3.11+.

    python3 tasks.py run             # the service alone, on http://127.0.0.1:8100
    python3 tasks.py test            # the whole test suite
    python3 tasks.py nativestack     # the stack as processes, no Docker (docs/native-stack.md)
    python3 tasks.py lint            # ruff, mypy and deptry
    python3 tasks.py bench           # the benchmarks (see docs/performance.md)
    python3 tasks.py verify          # check a running stack, box by box (see README)
    python3 tasks.py drill NAME      # break the service on purpose (--list; docs/drills.md)
    python3 tasks.py audit           # known vulnerabilities in the locked packages (pip-audit)
    python3 tasks.py compose ACTION  # the Docker stack: up, stack, traffic, ps, logs, reload,
                                     # grafana-password, down, clean (compose --help says each)

`COMMAND --help` says more about each. Each command but `compose` first makes sure uv is
there (installing it with pip if not) and that the virtual environment matches uv.lock, so
there is no separate set-up step. `test` also installs what the suite runs for real:
Debian's wrk, iproute2 and chromium (as root), the query grammars from npm, the page's
tracing bundle (built with npm, as `nativestack --stage 2` does too), and the Go builds of
Prometheus, Alertmanager, Loki and Alloy.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PROG = "python3 tasks.py"
"""How the commands are run, as their usage lines say."""
PROG_VARIABLE = "SANDBOX_PROG"
"""Where a command this file runs finds the name to give in its usage line: `python3
tasks.py verify`, rather than `python -m verify` (sandbox_telemetry's run_service, verify,
drills, bench and nativestack read it)."""
FLAGS_FILE = ROOT / "stack" / "flags" / "flags.json"
GRAMMARS = ROOT / "tests" / "grammars"
WEB = ROOT / "frontend" / "web"
"""The npm project of the page's OpenTelemetry: its `npm run build` writes BUNDLE."""
BUNDLE = ROOT / "frontend" / "src" / "frontend" / "static" / "tracing.js"


class SetupError(Exception):
    """A set-up step failed; the message says what to do about it."""


def main(argv: list[str]) -> int:
    commands = {
        "run": run,
        "test": test,
        "nativestack": nativestack,
        "lint": lint,
        "bench": bench,
        "verify": verify,
        "drill": drill,
        "audit": audit,
        "compose": compose,
    }
    usage = f"usage: {PROG} COMMAND [ARGS ...]\n\n{__doc__.strip()}"
    if argv and argv[0] in RENAMED:
        print(f"`tasks.py {argv[0]}` is now `tasks.py {RENAMED[argv[0]]}`", file=sys.stderr)
        argv = [RENAMED[argv[0]], *argv[1:]]
    if argv[:1] in (["help"], ["-h"], ["--help"]):
        print(usage)
        return 0
    if not argv or argv[0] not in commands:
        print(usage, file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    try:
        return commands[name](rest)
    except SetupError as error:
        print(f"tasks.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args: list[str]) -> int:
    """Serve the API; with no collector running, traces fail quietly (a line a minute).

    The faults come from the repository's flag file, as in compose: an edit of
    stack/flags/flags.json changes the running service. DICE_FLAGS_FILE, when set,
    names another file.
    """
    uv = ensure_environment()
    os.environ.setdefault("DICE_FLAGS_FILE", str(FLAGS_FILE))
    return call([uv, "run", "--frozen", "dice-roller", *args], prog=f"{PROG} run")


def test(args: list[str]) -> int:
    """Set up everything the suite runs for real, then run it: nothing may skip."""
    if "-h" in args or "--help" in args:
        print(f"usage: {PROG} test [PYTEST_ARGS ...]\n\n{test.__doc__}")
        print("PYTEST_ARGS go to pytest as they are (`uv run pytest --help` lists them).")
        return 0
    uv = ensure_environment()
    if os.name == "posix" and os.geteuid() != 0:
        raise SetupError(
            "the suite runs the native stack in network namespaces, which needs root: run "
            "`sudo python3 tasks.py test`, or the rest alone with "
            "`uv run --frozen pytest -m 'not nativestack'`"
        )
    install_system_tools()
    install_grammars()
    build_browser_bundle()
    build = call([uv, "run", "--frozen", "python", "-m", "nativestack", "--build-only"])
    if build != 0:
        raise SetupError("the Go builds of the stack's components failed (the error is above)")
    return call([uv, "run", "--frozen", "pytest", *args])


RENAMED = {"realstack": "nativestack"}
"""Old command names that still work, for a while, with a line naming the new one."""


def nativestack(args: list[str]) -> int:
    """Prometheus, Alertmanager, Loki, Alloy, a Tempo stand-in, the alert-receiver and the
    service, without Docker."""
    uv = ensure_environment()
    if _nativestack_stage(args) >= 2:  # the frontend serves the bundle
        build_browser_bundle()
    if _nativestack_stage(args) >= 5:
        install_system_tools(STAGE5_PACKAGES)
    return call(
        [uv, "run", "--frozen", "python", "-m", "nativestack", *args], prog=f"{PROG} nativestack"
    )


def _nativestack_stage(args: list[str]) -> int:
    """The stage `nativestack` will run: its `--stage` (nativestack's default, 1, without)."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--build-only", action="store_true")
    known, _ = parser.parse_known_args(args)
    return 0 if known.build_only else int(known.stage)


PACKAGES = (
    "dice-roller",
    "frontend",
    "die-service",
    "telemetry",
    "traffic-gen",
    "alert-receiver",
)
"""The workspace members, pyproject.toml's [tool.uv.workspace]: each declares exactly what
it imports (the alert-receiver: nothing, the standard library only)."""


def lint(args: list[str]) -> int:
    """ruff, strict mypy, and deptry on each shipped package: every import declared,
    every declared dependency used."""
    import argparse

    argparse.ArgumentParser(prog=f"{PROG} lint", description=lint.__doc__).parse_args(args)
    uv = ensure_environment()
    checks = [
        [uv, "run", "--frozen", "ruff", "check", "."],
        [uv, "run", "--frozen", "ruff", "format", "--check", "."],
        [uv, "run", "--frozen", "mypy"],
        *(
            [uv, "run", "--frozen", "deptry", package, "--config", f"{package}/pyproject.toml"]
            for package in PACKAGES
        ),
    ]
    return max(call(check) for check in checks)


def bench(args: list[str]) -> int:
    uv = ensure_environment()
    return call([uv, "run", "--frozen", "python", "-m", "bench", *args], prog=f"{PROG} bench")


def verify(args: list[str]) -> int:
    uv = ensure_environment()
    return call([uv, "run", "--frozen", "python", "-m", "verify", *args], prog=f"{PROG} verify")


def drill(args: list[str]) -> int:
    uv = ensure_environment()
    return call([uv, "run", "--frozen", "python", "-m", "drills", *args], prog=f"{PROG} drill")


COMPOSE_ACTIONS = {
    "up": "build and start the dice roller with the whole stack",
    "stack": "start the observability stack alone (stack/compose.yml: Prometheus, Loki, "
    "Tempo, Alloy, Grafana, Alertmanager, alert-receiver)",
    "traffic": "run the traffic generator once, in a container, against the dice roller",
    "ps": "show the containers and their health",
    "logs": "follow the logs of every container",
    "reload": "apply config changes without restarting: Prometheus, Alloy, Alertmanager, "
    "Grafana's provisioning",
    "grafana-password": "print Grafana's admin password (user admin; anonymous access needs none)",
    "down": "stop and remove the containers (data volumes are kept)",
    "clean": "stop everything and delete the stored metrics, logs, traces and Grafana state",
}
COMPOSE_ARGUMENTS = {
    "up": ["up", "-d", "--build"],
    "stack": ["-f", "stack/compose.yml", "up", "-d", "--build"],
    "traffic": ["--profile", "traffic", "run", "--rm", "--build", "traffic-gen"],
    "ps": ["ps"],
    "logs": ["logs", "-f", "--tail=50"],
    "down": ["--profile", "traffic", "down"],
    "clean": ["--profile", "traffic", "down", "-v"],
}
GRAFANA_PASSWORD_FILE = "/var/lib/grafana/admin-password"
"""Grafana's admin password, as grafana-init wrote it (stack/compose.yml): the
GRAFANA_ADMIN_PASSWORD the stack was first started with, or a random one."""


def compose(args: list[str]) -> int:
    """Docker Compose's everyday commands for the sandbox (Docker only: no uv, no sync).

    COMPOSE names another compose command (default `docker compose`). The ports listen on
    SANDBOX_BIND (stack/compose.yml, default 127.0.0.1), where `reload` sends its requests
    (to 127.0.0.1 when bound to 0.0.0.0).
    """
    import argparse
    import inspect
    import shlex
    import textwrap

    actions = (
        textwrap.fill(what, 88, initial_indent=f"  {name:<18}", subsequent_indent=" " * 20)
        for name, what in COMPOSE_ACTIONS.items()
    )
    parser = argparse.ArgumentParser(
        prog=f"{PROG} compose",
        description=inspect.cleandoc(compose.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="actions:\n" + "\n".join(actions),
    )
    parser.add_argument("action", choices=COMPOSE_ACTIONS, metavar="ACTION", help="see below")
    parser.add_argument(
        "-n", "--dry-run", action="store_true", help="print what it would run, and run nothing"
    )
    options = parser.parse_args(args)
    docker = shlex.split(os.environ.get("COMPOSE") or "docker compose")
    read_password = [*docker, "exec", "-T", "grafana", "cat", GRAFANA_PASSWORD_FILE]
    if options.action in COMPOSE_ARGUMENTS:
        command = [*docker, *COMPOSE_ARGUMENTS[options.action]]
        if options.dry_run:
            print(shlex.join(command))
            return 0
        # In this process group: `run` and `logs -f` use the terminal, and a Ctrl-C there
        # reaches docker as it would without tasks.py.
        return subprocess.run(command, cwd=ROOT).returncode
    if options.action == "grafana-password":
        if options.dry_run:
            print(shlex.join(read_password))
            return 0
        done = subprocess.run(read_password, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if done.returncode == 0:
            print(done.stdout.strip())
        return done.returncode
    return _reload(read_password, options.dry_run)


def _reload(read_password: list[str], dry_run: bool) -> int:
    """POST to each reload endpoint; Grafana's with the admin password its container has."""
    import base64
    import shlex
    import urllib.request

    bind = os.environ.get("SANDBOX_BIND") or "127.0.0.1"
    host = "127.0.0.1" if bind == "0.0.0.0" else bind
    plain = [f"http://{host}:{port}/-/reload" for port in (9090, 12345, 9093)]
    grafana = [
        f"http://{host}:3000/api/admin/provisioning/{kind}/reload"
        for kind in ("datasources", "dashboards")
    ]
    if dry_run:
        print("\n".join(f"POST {url}" for url in plain))
        print(f"{shlex.join(read_password)}  # the admin password, for:")
        print("\n".join(f"POST {url} (user admin)" for url in grafana))
        return 0

    def post(url: str, headers: dict[str, str]) -> bool:
        request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                print(f"reloaded: {url} ({response.status})")
                return True
        except OSError as error:  # URLError and HTTPError are OSErrors
            print(f"{PROG} compose reload: {url}: {error}", file=sys.stderr)
            return False

    if not all(post(url, {}) for url in plain):
        return 1
    done = subprocess.run(read_password, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"{PROG} compose reload: could not read Grafana's password", file=sys.stderr)
        return done.returncode
    token = base64.b64encode(f"admin:{done.stdout.strip()}".encode()).decode()
    return 0 if all(post(url, {"Authorization": f"Basic {token}"}) for url in grafana) else 1


PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def audit(args: list[str]) -> int:
    """pip-audit over uv.lock: exit 1 on a known vulnerability, and name every pin left
    unchecked, with the reason.

    This is not part of the test suite on purpose: its answer changes whenever an
    advisory is published, while the suite's result depends on the repository alone.
    The GitHub workflow `audit` runs it with --strict where the network is open.
    """
    import argparse
    import json
    import tempfile
    import urllib.request

    parser = argparse.ArgumentParser(prog=f"{PROG} audit", description=audit.__doc__)
    parser.add_argument(
        "--dev", action="store_true", help="audit the dev tools too, not only what images ship"
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail when any pin could not be checked"
    )
    parser.add_argument(
        "--osv-url", help="ask this OSV API (…/v1/query) instead of PyPI's per-release data"
    )
    options = parser.parse_args(args)
    uv = ensure_environment()

    export = [uv, "export", "--frozen", "--no-hashes", "--all-packages", "--no-emit-workspace"]
    if not options.dev:
        export.append("--no-dev")
    requirements = subprocess.run(export, cwd=ROOT, capture_output=True, text=True, check=True)
    pins = dict(re.findall(r"(?m)^([A-Za-z0-9_.\-]+)==([^\s;]+)", requirements.stdout))
    pins = {_canonical(name): version for name, version in pins.items()}

    service = ["-s", "osv", "--osv-url", options.osv_url] if options.osv_url else ["-s", "pypi"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write(requirements.stdout)
        file.flush()
        command = [
            uv, "run", "--frozen", "pip-audit", "-r", file.name, "--no-deps", "--disable-pip",
            *service, "--format", "json", "--progress-spinner", "off", "--timeout", "20",
        ]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)

    vulnerable: dict[str, list[str]] = {}
    unchecked: dict[str, str] = {}
    checked_by_pip_audit = checked_by_latest_json = 0
    if done.stdout.lstrip().startswith("{"):
        verdicts = json.loads(done.stdout)["dependencies"]
    else:  # pip-audit stopped: its service is unreachable, say
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        verdicts = [
            {"name": name, "version": version, "skip_reason": f"pip-audit stopped: {reason[:300]}"}
            for name, version in pins.items()
        ]
    for verdict in verdicts:
        name = _canonical(verdict["name"])
        pin = f"{name}=={verdict.get('version') or pins.get(name, '?')}"
        if "skip_reason" not in verdict:
            checked_by_pip_audit += 1
            ids = [v["id"] for v in verdict["vulns"]]
        elif options.osv_url:
            unchecked[pin] = verdict["skip_reason"]
            continue
        else:
            # PyPI's project JSON carries the vulnerabilities of the latest release only.
            try:
                url = PYPI_PROJECT_JSON.format(name=name)
                with urllib.request.urlopen(url, timeout=20) as response:
                    project = json.load(response)
            except (OSError, ValueError) as error:
                unchecked[pin] = f"no per-release data, and PyPI's project JSON failed: {error}"
                continue
            latest = project.get("info", {}).get("version")
            if latest != pin.split("==")[1]:
                unchecked[pin] = (
                    f"{verdict['skip_reason']}; PyPI's project data describes {latest} only"
                )
                continue
            checked_by_latest_json += 1
            ids = [v["id"] for v in project.get("vulnerabilities", []) if not v.get("withdrawn")]
        if ids:
            vulnerable[pin] = ids

    scope = "every locked pin, dev tools included" if options.dev else "what the images ship"
    print(f"audit of {scope}: {len(pins)} pins")
    print(
        f"  checked by pip-audit ({'OSV' if options.osv_url else 'PyPI'}): {checked_by_pip_audit}"
    )
    if not options.osv_url:
        print(f"  checked through PyPI's latest-release data: {checked_by_latest_json}")
    by_reason: dict[str, list[str]] = {}
    for pin, reason in sorted(unchecked.items()):
        by_reason.setdefault(reason, []).append(pin)
    for reason, pins_left in by_reason.items():
        print(f"  not checked ({reason}): {', '.join(pins_left)}")
    for pin, ids in sorted(vulnerable.items()):
        print(f"  VULNERABLE: {pin}: {', '.join(ids)}")
    if vulnerable:
        print(f"audit: known vulnerabilities in {len(vulnerable)} pin(s)", file=sys.stderr)
        return 1
    if unchecked:
        where = "run it where PyPI and OSV are reachable (the audit workflow does)"
        print(f"audit: {len(unchecked)} pin(s) not checked; {where}", file=sys.stderr)
        return 1 if options.strict else 0
    print("audit: no known vulnerability")
    return 0


def _canonical(name: str) -> str:
    """A project name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def ensure_environment() -> str:
    """uv (found, or installed once), and the workspace synced exactly to uv.lock.

    uv's folder goes on PATH for everything started from here, so tests and tools
    that call `uv` find the same one.
    """
    uv = shutil.which("uv") or _installed_uv() or _install_uv()
    os.environ["PATH"] = os.pathsep.join([str(Path(uv).parent), os.environ.get("PATH", "")])
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    sync = [uv, "sync", "--frozen", "--all-packages", "--quiet"]
    if subprocess.run(sync, cwd=ROOT).returncode != 0:
        raise SetupError(
            "`uv sync` could not build the environment from uv.lock (its error is above); "
            "it needs PyPI and Python 3.11 or newer on PATH"
        )
    return uv


def _installed_uv() -> str | None:
    """A uv that an earlier run installed with pip, where pip put it (maybe not on PATH)."""
    for scheme in (None, "nt_user" if os.name == "nt" else "posix_user"):
        candidate = Path(_script_path("uv", scheme))
        if candidate.is_file():
            return str(candidate)
    return None


UV = "uv==0.13.9"
"""The uv that tasks.py installs when none is found: the one the Dockerfiles use."""


def _install_uv() -> str:
    print("tasks.py: uv not found, installing it with pip ...", file=sys.stderr)
    in_virtualenv = sys.prefix != sys.base_prefix  # pip refuses --user there
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if not in_virtualenv:
        pip.append("--user")
    if subprocess.run([*pip, UV]).returncode != 0 and not in_virtualenv:
        # A distribution's own Python refuses user installs without this (PEP 668).
        subprocess.run([*pip, "--break-system-packages", UV])
    scheme = None if in_virtualenv else ("nt_user" if os.name == "nt" else "posix_user")
    uv = shutil.which("uv") or _script_path("uv", scheme)
    if not Path(uv).is_file():
        raise SetupError(
            f"could not install uv with {Path(sys.executable).name} -m pip. Install pip "
            "(e.g. `apt install python3-pip`) or uv itself (https://docs.astral.sh/uv/), "
            "then run this command again"
        )
    return uv


STAGE5_PACKAGES = {
    # Not on PATH: Debian keeps each major release's programs apart.
    "/usr/lib/postgresql/15/bin/postgres": "postgresql-15",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
}
"""Stage 5's database and its exporter, as the native stack runs them."""
DEBIAN_PACKAGES = {
    "wrk": "wrk",
    "ip": "iproute2",
    "npm": "npm",
    "node": "nodejs",
    "chromium": "chromium",  # the browser tests/frontend drives with Playwright
    **STAGE5_PACKAGES,
}
"""Commands the suite runs for real, and the Debian package of each."""


def install_system_tools(packages: dict[str, str] = DEBIAN_PACKAGES) -> None:
    """Install the missing commands of `packages` with apt (as root), or stop."""
    missing = sorted({package for tool, package in packages.items() if not shutil.which(tool)})
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise SetupError(
            f"the tests need {', '.join(missing)}: install them (on Debian or Ubuntu: "
            f"`sudo apt-get install -y --no-install-recommends {' '.join(missing)}`), "
            "then run this command again"
        )
    print(
        f"tasks.py: installing {', '.join(missing)} with apt-get (about a minute) ...",
        file=sys.stderr,
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            raise SetupError(f"`{' '.join(command)}` failed (its error is above)")


def install_grammars() -> None:
    """Grafana's PromQL/LogQL/TraceQL grammars for the query tests, from npm."""
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("npm is missing: install Node.js 20 and npm, then run this again")
    if (GRAMMARS / "node_modules").is_dir():
        return
    print("tasks.py: installing the query grammars with npm (a few seconds) ...", file=sys.stderr)
    command = [npm, "ci", "--prefix", str(GRAMMARS), "--silent", "--no-audit"]
    if subprocess.run(command).returncode != 0:
        raise SetupError("`npm ci` failed for tests/grammars (its error is above)")


def build_browser_bundle() -> None:
    """Build the page's tracing.js with npm and esbuild when it is missing, or older than
    what it is built from (web/'s sources, package.json and lock file)."""
    sources = [WEB / "package.json", WEB / "package-lock.json", *(WEB / "src").rglob("*")]
    if BUNDLE.is_file():
        newest = max(path.stat().st_mtime for path in sources if path.is_file())
        if BUNDLE.stat().st_mtime >= newest:
            return
        why = "its sources changed"
    else:
        why = "it is not built yet"
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError(
            "npm is missing, and the page's tracing bundle must be built with it: install "
            "Node.js 20 and npm, then run this again"
        )
    print(
        f"tasks.py: building the page's tracing bundle, {why}: npm ci in frontend/web, "
        "then esbuild into frontend/src/frontend/static/tracing.js (a few seconds) ...",
        file=sys.stderr,
    )
    for step in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        if subprocess.run([npm, *step, "--silent"], cwd=WEB).returncode != 0:
            raise SetupError(f"`npm {step[0]}` failed in frontend/web (its error is above)")


def call(command: list[str], prog: str | None = None) -> int:
    """Run `command` until it ends, passing on SIGINT, SIGTERM and SIGHUP; `prog`, when
    given, is the name its usage line gives (PROG_VARIABLE).

    The child gets a process group of its own, so a Ctrl-C in the terminal reaches it
    once, through here, and a signal sent to this process alone (an IDE's stop button,
    `kill`) reaches it too: nothing started here outlives this process.
    """
    env = {**os.environ, PROG_VARIABLE: prog} if prog else None
    process = subprocess.Popen(command, cwd=ROOT, process_group=0, env=env)

    def forward(signum: int, frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _script_path(name: str, scheme: str | None) -> str:
    """Where pip put the script `name`: the user scheme's scripts, or this Python's own."""
    import sysconfig

    scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
    suffix = ".exe" if os.name == "nt" else ""
    return str(Path(scripts) / f"{name}{suffix}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
