"""Random bytes for RqUIDs and claim tokens: kernel randomness, read a page at a time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway import entropy
from gateway.send_keys import new_rq_uid


def test_rq_uids_cost_one_system_call_per_256(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(entropy, "_pool", entropy._Pool())
    monkeypatch.setattr(os, "urandom", counting)
    ids = [new_rq_uid() for _ in range(512)]
    assert calls == [4096, 4096]  # os.urandom releases the GIL: once per 256 RqUIDs, not per send
    assert len(set(ids)) == 512
    assert all(len(i) == 36 and i[14] == "4" and i[19] in "89ab" for i in ids)  # uuid4 text


def test_bytes_are_never_handed_out_twice_across_refills() -> None:
    pool = entropy._Pool()
    taken = [pool.take(24) for _ in range(1000)]  # 24 does not divide 4096: a refill mid-chunk
    assert len(set(taken)) == 1000
    assert all(len(t) == 24 for t in taken)
    assert len(pool.take(5000)) == 5000  # more than a page: straight from the OS


# The fork happens in a fresh interpreter: forked here, the child would also run the at-fork hooks
# of whatever earlier tests left alive — OpenTelemetry's MeterProvider re-detects its resource in
# the child on a thread pool, and hung there in a CI run (the child spinning, the suite stuck).
_FORK = """
import os
from gateway import entropy
entropy.random_bytes(16)  # the parent's buffer holds unread bytes now
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child: its next bytes, to the parent
    os.write(write, entropy.random_bytes(16))
    os._exit(0)
os.close(write)
child = os.read(read, 16)
os.waitpid(pid, 0)
print(child.hex(), entropy.random_bytes(16).hex())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_does_not_repeat_its_parents_bytes() -> None:
    run = subprocess.run([sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    child, parent = run.stdout.split()
    assert len(bytes.fromhex(child)) == 16
    assert child != parent  # without the reset at fork, the same 16 bytes
