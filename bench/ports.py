"""Free loopback ports for servers started in other processes (the bench's, and the tests')."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 10_000
_pick = random.randrange


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default range starts here


def free_port() -> int:
    """A loopback TCP port free now, picked below the kernel's ephemeral range.

    The port is only reserved until this returns: the server binds it later, in its own process.
    A port the kernel handed out for bind(("", 0)) comes from the ephemeral range, where any
    outgoing connection meanwhile (the load generators make thousands) may take it first — a
    server that then cannot bind (seen once in CI). Below that range only explicit binds compete.
    """
    top = _ephemeral_start()
    tries = 100 if top - _LOWEST >= 1000 else 0  # an unusual range: the kernel's pick below
    for _ in range(tries):
        port = _pick(_LOWEST, top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen
