"""`make generate --check` fails on a stale copy and passes on a fresh one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _copy(tmp: Path) -> Path:
    root = tmp / "repo"
    shutil.copytree(ROOT / "proto", root / "proto")
    shutil.copytree(
        ROOT / "clients/python/src/smartpush",
        root / "clients/python/src/smartpush",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/generate.py"), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_fresh_copy_passes(tmp_path: Path) -> None:
    done = _check(_copy(tmp_path))
    assert done.returncode == 0, done.stderr


def test_changed_proto_makes_the_committed_stubs_stale(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    proto = root / "proto/smartpush/gateway/v1/push_service.proto"
    proto.write_text(proto.read_text().replace("bool replayed = 6;", "bool replayed = 6;\n  // New.\n  string x = 7;"))
    done = _check(root)
    assert done.returncode == 1
    assert "stale smartpush/gateway/v1/push_service_pb2.py" in done.stderr


def test_hand_edited_stub_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    stub = root / "clients/python/src/smartpush/gateway/v1/errors_pb2.pyi"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    done = _check(root)
    assert done.returncode == 1
    assert "errors_pb2.pyi" in done.stderr
