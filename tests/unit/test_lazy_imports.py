"""What a process does not use, it does not load: each of these costs megabytes of RSS in every
worker (docs/performance.md), so the server imports them only when configured to use them."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import gateway.server
print(" ".join(m for m in {mods!r} if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("module", "used_when"),
    [
        ("redis", "state.backend: redis"),
        ("jwt", "auth.mode: jwt"),
        ("aiohttp.web", "callbacks.enabled (the receiver) or the emulator"),
        ("gateway.emulator", "serve --emulator"),
    ],
)
def test_the_server_loads_it_only_when_configured(module: str, used_when: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(mods=[module])], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"{module} is imported by gateway.server; it is needed only with {used_when}"
