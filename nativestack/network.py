"""A private network like compose's: one namespace per service, a bridge, a hosts file each.

Compose gives every service its own address and lets the others reach it by name, so
the configs say `loki:3100` and `tempo:4317`, and Alloy and Tempo may both listen on
4317. Network namespaces give a plain process the same: `ip netns add`, a veth pair
into a bridge on the host, and `/etc/netns/NAME/hosts`, which `ip netns exec` shows
the process as its /etc/hosts. The host reaches every service at its address on the
bridge, so nothing needs a published port.

Creating namespaces needs root (CAP_NET_ADMIN) and iproute2's `ip`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Network", "NetworkError", "private_network", "require_network_tools"]

SUBNETS = ipaddress.ip_network("10.254.0.0/16")
"""The /24 of each network is taken from here: one not already on a host interface."""
NETNS_ETC = Path("/etc/netns")
_SERIALS = itertools.count()


class NetworkError(RuntimeError):
    """The namespaces could not be made; the message says what is missing."""


@dataclass(frozen=True)
class Network:
    """Hosts by name, each in namespace `namespaces[name]` at `addresses[name]`."""

    prefix: str
    bridge: str
    gateway: str
    addresses: dict[str, str]
    namespaces: dict[str, str]

    def exec_prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program as `host`."""
        return ["ip", "netns", "exec", self.namespaces[host]]

    def hosts_file(self) -> str:
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{address} {name}" for name, address in self.addresses.items()]
        return "\n".join(lines) + "\n"


def require_network_tools() -> None:
    """Stop at once, with what to do, where namespaces cannot be made."""
    if os.name != "posix" or not Path("/proc/self/ns/net").exists():
        raise NetworkError("the native stack needs Linux network namespaces")
    if os.geteuid() != 0:
        raise NetworkError(
            "the native stack makes network namespaces, which needs root: run it as root "
            "(e.g. `sudo python3 tasks.py nativestack`), or use `docker compose up -d`"
        )
    if shutil.which("ip") is None:
        raise NetworkError("`ip` is missing: install iproute2 (`apt-get install -y iproute2`)")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def _free_subnet() -> ipaddress.IPv4Network:
    shown = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    used = {ipaddress.ip_interface(word).network for word in shown.split() if "/" in word}
    for subnet in SUBNETS.subnets(new_prefix=24):
        if not any(subnet.overlaps(other) for other in used):
            return ipaddress.IPv4Network(subnet)
    raise NetworkError(f"no free /24 left in {SUBNETS}")


def remove_stale(prefix_root: str = "dsn") -> None:
    """Namespaces, bridges and processes left by a run that was killed (SIGKILL) before
    it could stop them."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        ours = len(parts) >= 4 and parts[0] == prefix_root and parts[1].isdigit()
        if ours and not Path(f"/proc/{parts[1]}").exists():
            # The run was killed before it could stop its components: stop them now.
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
            bridge = f"dsb{parts[1]}x{parts[2]}"[:15]
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@contextmanager
def private_network(hosts: Sequence[str]) -> Iterator[Network]:
    """Namespaces for `hosts` on one bridge, removed when the block ends."""
    require_network_tools()
    remove_stale()
    pid = os.getpid()
    serial = next(_SERIALS)  # several networks in one process (a test session)
    prefix = f"dsn-{pid}-{serial}"
    bridge = f"dsb{pid}x{serial}"[:15]
    subnet = _free_subnet()
    gateway, *free = (str(address) for address in subnet.hosts())
    addresses = {host: free[index + 9] for index, host in enumerate(hosts)}
    namespaces = {host: f"{prefix}-{host}" for host in hosts}
    network = Network(prefix, bridge, gateway, addresses, namespaces)
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, host in enumerate(hosts):
            namespace, veth = namespaces[host], f"dv{pid}x{serial}x{index}"[:15]
            _ip("netns", "add", namespace)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", veth, "master", bridge, "up")
            _ip(
                "-n",
                namespace,
                "addr",
                "add",
                f"{addresses[host]}/{subnet.prefixlen}",
                "dev",
                "eth0",
            )
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            etc = NETNS_ETC / namespace
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(network.hosts_file(), encoding="utf-8")
        yield network
    finally:
        for namespace in namespaces.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
