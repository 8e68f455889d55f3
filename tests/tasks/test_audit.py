"""`tasks.py audit`: real pip-audit over the real lock, against an OSV API served here.

api.osv.dev and PyPI's per-release JSON cannot be reached from our machines, and their
answers change whenever an advisory is published, so the suite never asks them: the
live audit is `python3 tasks.py audit --strict` in the `audit` workflow. What the
suite proves is that the audit is honest: an advisory for a locked pin fails it, a
clean answer passes it, and a pin that could not be checked is named, with the reason.
The stand-in speaks OSV's query API (POST /v1/query), which pip-audit's `--osv-url`
points at.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

from tests.support.http_server import LocalHTTPServer, QuietHandler, serving
from tests.support.paths import ROOT
from tests.support.tools import free_port

ADVISORY = "GHSA-test-0000-0000"


def locked_version(name: str) -> str:
    match = re.search(rf'(?m)^name = "{name}"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text())
    assert match, f"{name} is not in uv.lock"
    return match.group(1)


class Osv(LocalHTTPServer):
    """OSV's query API, knowing one advisory at most; it records what it was asked."""

    def __init__(self, advisory_for: tuple[str, str] | None = None) -> None:
        self.asked: list[tuple[str, str]] = []
        lock = threading.Lock()
        osv = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                asked = (query["package"]["name"], query["version"])
                with lock:
                    osv.asked.append(asked)
                answer: dict[str, object] = {}
                if asked == advisory_for:
                    affected = {"package": {"name": asked[0], "ecosystem": "PyPI"}}
                    answer = {"vulns": [{"id": ADVISORY, "summary": "a test advisory",
                                         "affected": [affected]}]}  # fmt: skip
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


def run_audit(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "tasks.py"), "audit", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_an_advisory_for_a_locked_pin_fails_the_audit_and_names_it() -> None:
    pin = ("idna", locked_version("idna"))
    with serving(Osv(advisory_for=pin)) as osv:
        done = run_audit("--osv-url", f"{osv.url}/v1/query")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"VULNERABLE: idna=={pin[1]}: {ADVISORY}" in done.stdout
    assert pin in osv.asked, "pip-audit asked about the locked version"


def test_a_clean_answer_for_every_shipped_pin_passes_and_says_how_many_were_checked() -> None:
    with serving(Osv()) as osv:
        done = run_audit("--osv-url", f"{osv.url}/v1/query", "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    pins = int(re.search(r": (\d+) pins", done.stdout).group(1))  # type: ignore[union-attr]
    assert pins > 20, "the export holds the lock"
    assert f"checked by pip-audit (OSV): {pins}" in done.stdout
    assert len(set(osv.asked)) == pins
    assert ("fastapi", locked_version("fastapi")) in osv.asked
    assert "no known vulnerability" in done.stdout


def test_the_dev_scope_asks_about_the_dev_tools_too() -> None:
    with serving(Osv()) as osv:
        done = run_audit("--osv-url", f"{osv.url}/v1/query", "--dev")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("pytest", locked_version("pytest")) in osv.asked
    assert "dev tools included" in done.stdout


def test_an_unreachable_service_leaves_every_pin_unchecked_and_says_why() -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1/query"
    done = run_audit("--osv-url", closed)
    assert done.returncode == 0, "without --strict, unchecked pins are reported, not fatal"
    unchecked = re.findall(r"(?m)^  not checked \((.+)\): (.+)$", done.stdout)
    assert len(unchecked) == 1, "one reason, said once"
    reason, pins = unchecked[0]
    assert reason.startswith("pip-audit stopped: ") and "ConnectionError" in reason
    assert f"fastapi=={locked_version('fastapi')}" in pins.split(", ")
    assert "not checked; run it where PyPI and OSV are reachable" in done.stderr

    strict = run_audit("--osv-url", closed, "--strict")
    assert strict.returncode == 1
    assert "no known vulnerability" not in strict.stdout
