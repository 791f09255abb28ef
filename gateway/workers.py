"""`serve --workers N`: N gateway processes sharing one port through SO_REUSEPORT.

One Python process is bound to one core by the GIL; the kernel spreads new connections over
the processes listening on the port. Each worker has its own token cache (one token request
per profile per worker per token lifetime) and its own connection pool. A gRPC channel is one
connection, so a client balances over workers only with several channels.

The supervisor stays small: it starts the workers, forwards SIGTERM/SIGINT (each worker drains
on its own), and if a worker dies it stops the rest and exits non-zero so the orchestrator
restarts the pod, rather than running on with a silent hole in capacity.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

READY_MARK = "listening on"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def resolve_port(listen: str) -> str:
    """Port 0 means "any": pick one here, so every worker binds the same one."""
    host, _, port = listen.rpartition(":")
    if port != "0":
        return listen
    bind_host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((bind_host, 0))
        return f"{host}:{s.getsockname()[1]}"


def worker_env(base: dict[str, str], index: int, prometheus_listen: str | None, salt: str) -> dict[str, str]:
    env = {**base, "SMARTPUSH_GATEWAY_WORKER_INDEX": str(index), "SMARTPUSH_GATEWAY_TELEMETRY__SUB_HASH_SALT": salt}
    if prometheus_listen:
        # One scrape port per worker (base port + index): each process has its own registry.
        host, _, port = prometheus_listen.rpartition(":")
        env["SMARTPUSH_GATEWAY_TELEMETRY__PROMETHEUS_LISTEN"] = f"{host}:{int(port) + index}"
    return env


def supervise(
    workers: int, listen: str, worker_args: Sequence[str], prometheus_listen: str | None, salt: str | None
) -> int:
    """Run `workers` copies of `serve` on one port until signalled; returns the exit status."""
    listen = resolve_port(listen)
    # Workers must hash a sub the same way, or one user looks like several in traces.
    shared_salt = salt or secrets.token_hex(16)
    procs: list[subprocess.Popen[str]] = []
    for i in range(workers):
        argv = [sys.executable, "-m", "gateway", "serve", "--workers", "1", "--listen", listen, *worker_args]
        env = worker_env(dict(os.environ), i, prometheus_listen, shared_salt)
        # preexec_fn is safe here: the supervisor runs no other thread.
        procs.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)  # noqa: S603 (our argv)
        )

    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if READY_MARK not in line:
            forward(signal.SIGTERM, None)
            _wait_all(procs)
            print(f"a worker failed to start: {line.strip()!r}", file=sys.stderr, flush=True)
            return 1
        p.stdout.close()  # workers print nothing else on stdout; logs go to stderr
    print(f"smartpush-gateway listening on {listen} ({workers} workers)", flush=True)

    status = 0
    while not stopping:
        for p in procs:
            code = p.poll()
            if code is not None and not stopping:
                print(f"worker {p.pid} exited with {code}; stopping the others", file=sys.stderr, flush=True)
                status = code or 1
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    codes = _wait_all(procs)
    return status or max(codes, default=0)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the supervisor dies, however it dies (even SIGKILL), so no
    orphaned worker keeps serving on the port. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _wait_all(procs: list[subprocess.Popen[str]]) -> list[int]:
    return [p.wait() for p in procs]
