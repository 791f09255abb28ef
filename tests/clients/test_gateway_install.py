"""`pip install .` of the gateway from a clean clone is one command, and the client SDK installs
beside it: the generated stubs are one distribution (smartpush-gateway-protos) that both depend on,
so neither owns the other's files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_the_gateway_installs_from_a_clean_clone_with_one_command(tmp_path: Path) -> None:
    clone, venv = tmp_path / "clone", tmp_path / "venv"
    # Exactly what a clone holds: the committed files, nothing built or installed in this tree.
    for name in _run("git", "ls-files", "-z", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin/pip", "install", "-q", ".", cwd=clone)
    assert _run(venv / "bin/smartpush-gateway", "--version", cwd=tmp_path).strip() == "smartpush-gateway 0.1.0"
    installed = _run(venv / "bin/pip", "list", "--format=freeze", cwd=tmp_path)
    assert "smartpush-gateway-protos==0.1.0" in installed
    assert "smartpush-gateway-client" not in installed  # the gateway needs the stubs, not the SDK

    # The SDK beside it (its stubs requirement is already met), then gone again: the stubs stay.
    _run(venv / "bin/pip", "install", "-q", "--no-deps", clone / "clients/python", cwd=tmp_path)
    _run(venv / "bin/pip", "check", cwd=tmp_path)
    _run(venv / "bin/pip", "uninstall", "-y", "-q", "smartpush-gateway-client", cwd=tmp_path)
    probe = "import gateway.cli, smartpush.gateway.v1.push_service_pb2_grpc; print('ok')"
    assert _run(venv / "bin/python", "-c", probe, cwd=tmp_path).strip() == "ok"
