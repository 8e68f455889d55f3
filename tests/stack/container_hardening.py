"""What Docker made of each container's lock-down, read back from the running stack.

    python3 -m tests.stack.container_hardening      # at the repository root, stack up

The stack workflow (.github/workflows/stack.yml) runs this after `docker compose up`:
the compose files say what each container gets (tests/stack/test_compose_hardening.py
holds them to SECURITY.md), and this checks that Docker applied it. For every
container of the project, `docker inspect` must show a read-only root filesystem, every
capability dropped, `no-new-privileges`, the process and CPU limits, the user and the
tmpfs mounts that `docker compose config` asks for; and for every running one, the
kernel's view of its main process (/proc/PID/status on the host) must show that user
and group, no capability at all, and the no_new_privs bit. Standard library only: the
workflow runs it with the runner's Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

__all__ = ["container_problems", "main", "parse_ps", "parse_status", "process_problems"]


def parse_ps(output: str) -> list[JSON]:
    """`docker compose ps --format json`: one JSON array (older Compose) or one object a line."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        found: list[JSON] = json.loads(text)
        return found
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as a mapping: `Uid` -> "0\t0\t0\t0", `CapEff` -> "0000...", ..."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def declared_user(spec: Mapping[str, Any]) -> tuple[int, int] | None:
    """The numeric `uid:gid` of the service's `user:`, or None when the image's USER rules."""
    user = spec.get("user")
    if user is None:
        return None
    uid, _, gid = str(user).partition(":")
    return int(uid), int(gid or uid)


def _cpus(spec: Mapping[str, Any]) -> float:
    limits = (spec.get("deploy") or {}).get("resources", {}).get("limits", {})
    return float(limits.get("cpus") or spec.get("cpus") or 0)


def _pids(spec: Mapping[str, Any]) -> int:
    limits = (spec.get("deploy") or {}).get("resources", {}).get("limits", {})
    return int(spec.get("pids_limit") or limits.get("pids") or 0)


def container_problems(spec: Mapping[str, Any], inspected: Mapping[str, Any]) -> list[str]:
    """How `docker inspect`'s view of a container differs from its compose service."""
    host = inspected.get("HostConfig") or {}
    config = inspected.get("Config") or {}
    problems = []
    if not spec.get("read_only") or host.get("ReadonlyRootfs") is not True:
        problems.append(f"root filesystem writable (ReadonlyRootfs={host.get('ReadonlyRootfs')})")
    if "ALL" not in (host.get("CapDrop") or []):
        problems.append(f"capabilities not all dropped (CapDrop={host.get('CapDrop')})")
    if host.get("CapAdd"):
        problems.append(f"capabilities added back (CapAdd={host['CapAdd']})")
    options = host.get("SecurityOpt") or []
    if not any(str(option).startswith("no-new-privileges") for option in options):
        problems.append(f"no no-new-privileges (SecurityOpt={options})")
    pids = _pids(spec)
    if pids <= 0 or host.get("PidsLimit") != pids:
        problems.append(f"process limit {host.get('PidsLimit')}, compose says {pids}")
    cpus = _cpus(spec)
    if cpus <= 0 or host.get("NanoCpus") != round(cpus * 1e9):
        problems.append(f"CPU limit {host.get('NanoCpus')} nano-CPUs, compose says {cpus}")
    if "user" in spec and config.get("User") != str(spec["user"]):
        problems.append(f"user {config.get('User')!r}, compose says {spec['user']!r}")
    tmpfs = sorted(str(path).split(":")[0] for path in spec.get("tmpfs") or [])
    if sorted(host.get("Tmpfs") or {}) != tmpfs:
        problems.append(f"tmpfs {sorted(host.get('Tmpfs') or {})}, compose says {tmpfs}")
    return problems


def process_problems(spec: Mapping[str, Any], status: Mapping[str, str]) -> list[str]:
    """How the kernel's view of a container's main process differs from what it should be."""
    problems = []
    uid = int(status["Uid"].split()[1])  # real, effective, saved, filesystem
    gid = int(status["Gid"].split()[1])
    user = declared_user(spec)
    if user is not None and (uid, gid) != user:
        problems.append(f"runs as {uid}:{gid}, compose says {user[0]}:{user[1]}")
    if user is None and uid == 0:
        problems.append("runs as root, and compose names no user")
    for key in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status.get(key, "0"), 16) != 0:
            problems.append(f"{key} {status[key]}: capabilities left")
    if status.get("NoNewPrivs") != "1":
        problems.append(f"NoNewPrivs {status.get('NoNewPrivs')}")
    return problems


def _docker(*args: str) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    services: dict[str, JSON] = json.loads(_docker("compose", "config", "--format", "json"))[
        "services"
    ]
    containers = parse_ps(_docker("compose", "ps", "--all", "--format", "json"))
    failures = []
    seen = set()
    for container in containers:
        name, service = container["Name"], container["Service"]
        seen.add(service)
        spec = services.get(service)
        if spec is None:
            failures.append(f"{name}: service {service} is not in `docker compose config`")
            continue
        [inspected] = json.loads(_docker("inspect", container["ID"]))
        problems = container_problems(spec, inspected)
        state = inspected.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if state.get("Running") and pid:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
            problems += process_problems(spec, parse_status(status))
            fields = parse_status(status)
            who = f"uid:gid {fields['Uid'].split()[1]}:{fields['Gid'].split()[1]}"
        else:
            who = f"not running ({state.get('Status')})"
        print(f"{service:16} {who:24} {'ok' if not problems else '; '.join(problems)}")
        failures += [f"{service}: {problem}" for problem in problems]
    missing = {name for name, spec in services.items() if not spec.get("profiles")} - seen
    failures += [f"{name}: no container" for name in sorted(missing)]
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
