"""What the kernel says of a local server's connections (Linux only, like our machines).

A test that signals a server "with requests in flight" must first know the server
holds them: a request still in the listen backlog, or in a socket the server has not
read yet, is not in flight but lost at shutdown. A fixed sleep only guesses; the
receive queues in /proc/net/tcp say.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["unread_connections"]

ESTABLISHED, LISTEN = "01", "0A"  # the `st` column of /proc/net/tcp


def unread_connections(port: int) -> int:
    """Connections to 127.0.0.1:`port` the server has not accepted yet, or has not read
    every byte of: once the clients have written their requests, 0 means the server has
    read them all."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.rsplit(":", 1)[1], 16) != port:
            continue
        received = int(queues.split(":")[1], 16)
        # A listening socket's receive queue is its backlog of connections not accepted.
        # A closing one is left out: its client already closed, answered or not.
        count += received if state == LISTEN else int(state == ESTABLISHED and received > 0)
    return count
