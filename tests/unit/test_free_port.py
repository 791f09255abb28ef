"""Ports for servers in other processes come from below the kernel's ephemeral range."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import bench.ports
from bench.ports import _ephemeral_start, free_port


def test_ports_are_free_and_below_the_ephemeral_range() -> None:
    start = _ephemeral_start()
    ports = {free_port() for _ in range(50)}
    assert all(10_000 <= p < start for p in ports), sorted(ports)
    assert len(ports) > 40  # spread out, not one port handed to every test
    for port in list(ports)[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: the server can have it


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        held.listen()
        taken = held.getsockname()[1]
        candidate = free_port()
        picks: Iterator[int] = iter([taken, taken, candidate])
        monkeypatch.setattr(bench.ports, "_pick", lambda low, high: next(picks))
        assert free_port() == candidate
