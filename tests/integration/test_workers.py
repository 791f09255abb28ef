"""`serve --workers 2` for real: two processes on one port, each with its own token, a small
supervisor that forwards SIGTERM, and a non-zero exit when a worker dies."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer
from tests.helpers import EmulatorAdmin, async_stub, send_request

BIN = Path(sys.executable).parent


class Supervisor:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port

    def workers(self) -> list[int]:
        pid = self.proc.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on the port (gRPC binds 127.0.0.1 as a v4-mapped IPv6 socket)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


@pytest.fixture
async def supervisor(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Supervisor]:
    env = {
        **os.environ,
        "SMARTPUSH_GATEWAY_AUTH__MODE": "none",
        "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": emulator.url,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": DEMO_CLIENT_ID,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": DEMO_SECRET,
        "SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": str(tmp_path / "state.sqlite3"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "smartpush-gateway"), "serve", "--workers", "2", "--listen", "127.0.0.1:0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(2 workers\)", line)
    assert match, line
    running = Supervisor(proc, int(match.group(1)))
    yield running
    if proc.returncode is None:
        workers = running.workers()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            for pid in workers:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


async def test_two_workers_listen_on_one_port_and_each_has_its_own_token(
    supervisor: Supervisor, admin: EmulatorAdmin
) -> None:
    workers = supervisor.workers()
    assert len(workers) == 2
    listening = _listening_inodes(supervisor.port)
    # SO_REUSEPORT: one listening socket per worker, none in the supervisor.
    assert len(listening) == 2
    assert all(_socket_inodes(pid) & listening for pid in workers)
    assert not _socket_inodes(supervisor.proc.pid) & listening
    # The supervisor never loads gRPC: it only parses settings and starts processes.
    assert "cygrpc" not in _maps(supervisor.proc.pid)

    # Each new connection lands on one of the workers; every call is served.
    for _ in range(8):
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{supervisor.port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as ch:
            reply = await async_stub(ch).Send(send_request(), timeout=10)
            assert reply.results[0].status_code == 0
    # One token per worker (readiness fetched each at start), whatever the number of calls.
    assert (await admin.stats())["token"] == 2


async def test_sigterm_drains_every_worker_and_exits_zero(supervisor: Supervisor) -> None:
    workers = supervisor.workers()
    supervisor.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(supervisor.proc.wait(), 30) == 0
    assert not any(_alive(pid) for pid in workers)


async def test_a_dead_worker_stops_the_rest_and_the_supervisor_fails(supervisor: Supervisor) -> None:
    first, second = supervisor.workers()
    os.kill(first, signal.SIGKILL)
    assert await asyncio.wait_for(supervisor.proc.wait(), 30) != 0
    assert not _alive(second)


async def test_workers_stop_when_the_supervisor_is_killed(supervisor: Supervisor) -> None:
    """Even SIGKILL, which the supervisor cannot forward: no orphan keeps the port."""
    workers = supervisor.workers()
    supervisor.proc.kill()
    await supervisor.proc.wait()
    for _ in range(300):  # up to 30 s: each worker drains before it exits
        if not any(_alive(pid) for pid in workers):
            break
        await asyncio.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    assert not _listening_inodes(supervisor.port)


def _maps(pid: int) -> str:
    """The shared objects a process has loaded."""
    return Path(f"/proc/{pid}/maps").read_text()


def _alive(pid: int) -> bool:
    """Running (a reaped or zombie process is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
