"""The namespaces of the native stack: reachable by name inside, removed afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from nativestack.network import private_network, remove_stale
from stackclient import wait_until


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_hosts_reach_each_other_by_name_and_the_host_reaches_them(tmp_path: Path) -> None:
    with private_network(("web", "client")) as network:
        server = subprocess.Popen(
            [*network.exec_prefix("web"), sys.executable, "-m", "http.server", "8000"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            (tmp_path / "hello.txt").write_text("hello")
            fetch = "import urllib.request; print(urllib.request.urlopen('http://web:8000/hello.txt').read().decode())"
            tries: list[subprocess.CompletedProcess[str]] = []

            def fetched() -> bool | None:
                tries.append(
                    subprocess.run(
                        [*network.exec_prefix("client"), sys.executable, "-c", fetch],
                        capture_output=True,
                        text=True,
                    )
                )
                return tries[-1].returncode == 0 or None

            wait_until(fetched, 20)
            inside = tries[-1]
            assert inside.stdout.strip() == "hello", inside.stderr
            url = f"http://{network.addresses['web']}:8000/hello.txt"
            assert httpx.get(url, timeout=5).text == "hello"
        finally:
            server.terminate()
            server.wait(10)
        names = list(network.namespaces.values())
    listed = namespaces()
    assert not any(name in listed for name in names)


def test_what_a_killed_run_left_behind_is_removed_with_its_processes() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    name = f"dsn-{gone.pid}-0-leftover"
    subprocess.run(["ip", "netns", "add", name], check=True)
    orphan = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "300"])
    try:
        time.sleep(0.3)
        remove_stale()
        orphan.wait(timeout=10)
        assert name not in namespaces()
    finally:
        if orphan.poll() is None:
            orphan.kill()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
