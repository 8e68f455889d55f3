"""`alert-receiver` (or `python -m alert_receiver`): listen until SIGTERM or Ctrl-C.

The address comes from `--host`/`--port`, else ALERT_RECEIVER_HOST and
ALERT_RECEIVER_PORT, else 127.0.0.1:9099 (the image sets the host to 0.0.0.0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from . import SERVICE_NAME
from .server import AlertReceiver, Output

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9099


def build_parser(prog: str = "alert-receiver") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Receive Alertmanager's webhook notifications on POST /alerts and print one "
            "JSON line per alert on stdout."
        ),
    )
    parser.add_argument(
        "--host", help=f"address to listen on [ALERT_RECEIVER_HOST, default {DEFAULT_HOST}]"
    )
    parser.add_argument(
        "--port", help=f"TCP port to listen on [ALERT_RECEIVER_PORT, default {DEFAULT_PORT}]"
    )
    return parser


def _port(value: str, source: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"{source}={value!r} is not a port: expected a whole number, 1 to 65535")
    return int(value)


def main(argv: Sequence[str] | None = None, prog: str = "alert-receiver") -> int:
    """The command; `prog` names it in its usage line: `python -m` passes its own."""
    args = build_parser(prog).parse_args(argv)
    host = args.host or os.environ.get("ALERT_RECEIVER_HOST") or DEFAULT_HOST
    from_env = os.environ.get("ALERT_RECEIVER_PORT")
    try:
        if args.port is not None:
            port = _port(args.port, "--port")
        else:
            port = _port(from_env, "ALERT_RECEIVER_PORT") if from_env else DEFAULT_PORT
    except ValueError as error:
        print(f"{SERVICE_NAME}: {error}", file=sys.stderr)
        return 2
    output = Output()
    try:
        server = AlertReceiver((host, port), output)
    except OSError as error:
        print(f"{SERVICE_NAME}: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: not from its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, stop)
    output.log("info", f"listening on http://{host}:{port}", host=host, port=port)
    with server:
        server.serve_forever(poll_interval=0.5)
    output.log("info", "stopped")
    return 0
