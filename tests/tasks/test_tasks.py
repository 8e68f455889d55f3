"""tasks.py, the project's two commands and the rest: set-up found once, nothing left behind."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from stackclient import answers, wait_until
from tests.support.flags import SHIPPED_FLAGS as FLAGS_FILE
from tests.support.paths import ROOT
from tests.support.processes import command_lines
from tests.support.tools import free_port


def load_tasks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tasks_under_test", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_uv_that_pip_installed_off_path_is_found_not_installed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pip --user puts uv in ~/.local/bin, often not on PATH: found there, not reinstalled."""
    tasks = load_tasks()
    uv = shutil.which("uv")
    assert uv is not None
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "uv").symlink_to(uv)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(tasks, "_script_path", lambda name, scheme: str(scripts / name))

    def no_install() -> str:
        raise AssertionError("uv was installed again")

    monkeypatch.setattr(tasks, "_install_uv", no_install)
    monkeypatch.setattr(tasks.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    assert tasks.ensure_environment() == str(scripts / "uv")
    assert os.environ["PATH"].split(os.pathsep)[0] == str(scripts), "uv's folder goes on PATH"


def _still_running(port: int, pids: bool = False) -> list[str]:
    """Command lines (or pids) of live processes started for `port`."""
    return [
        pid if pids else command
        for pid, command in command_lines().items()
        if f"--port {port}" in command and "dice" in command
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_tasks_py_alone_stops_the_service_it_started(
    sig: signal.Signals, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "DICE_MAX_DELAY_SECONDS": "0"}
    env.pop("DICE_FLAGS_FILE", None)
    output = tmp_path / "output.log"
    with output.open("wb") as sink:
        tasks = subprocess.Popen(
            [sys.executable, "tasks.py", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # only the signal below reaches it, as from `kill`
        )
    try:
        if not wait_until(lambda: answers(f"http://127.0.0.1:{port}/", timeout=1), 60):
            pytest.fail("the service never answered")
        # `run` serves with the repository's flag file, as compose does.
        loaded = [
            line for line in output.read_text().splitlines() if "Watching the flag file" in line
        ]
        assert len(loaded) == 1 and json.loads(loaded[0])["flags_file"] == str(FLAGS_FILE)
        tasks.send_signal(sig)
        tasks.wait(timeout=30)
        wait_until(lambda: not _still_running(port) or None, 10)
        assert _still_running(port) == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    finally:
        if tasks.poll() is None:
            os.killpg(tasks.pid, signal.SIGKILL)
        for pid in _still_running(port, pids=True):
            os.kill(int(pid), signal.SIGKILL)


def test_the_uv_tasks_py_installs_is_the_one_the_images_use() -> None:
    """A uv release since the lock cannot change what a fresh machine runs."""
    tasks = load_tasks()
    for dockerfile in ("dice-roller/Dockerfile", "traffic-gen/Dockerfile"):
        assert f"pip install --no-cache-dir {tasks.UV}" in (ROOT / dockerfile).read_text()


def test_the_lint_refuses_an_import_its_package_does_not_declare(tmp_path: Path) -> None:
    """deptry, as `tasks.py lint` runs it on each shipped package: the service as it is
    passes; the same service with pydantic dropped from its dependencies fails."""
    tasks = load_tasks()
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    assert set(tasks.PACKAGES) == set(members["members"]), "deptry checks every member"
    deptry = shutil.which("deptry") or str(Path(sys.executable).parent / "deptry")
    copy = tmp_path / "dice-roller"
    shutil.copytree(ROOT / "dice-roller", copy, ignore=shutil.ignore_patterns("__pycache__"))

    def check() -> subprocess.CompletedProcess[str]:
        command = [deptry, str(copy), "--config", str(copy / "pyproject.toml")]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert check().returncode == 0
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "pydantic>=2.9",\n', ""))
    undeclared = check()
    assert undeclared.returncode != 0
    assert "'pydantic' imported but it is a transitive dependency" in undeclared.stderr
