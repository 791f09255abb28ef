"""`make generate --check` fails on a stale copy and passes on a fresh one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# The committed output of every language (scripts/generate.py TARGETS).
GENERATED = [
    "clients/python-protos/src/smartpush",
    "clients/typescript/src/gen",
    "clients/go/src/github.com/smartpush-gateway/go/smartpush",
]


def _copy(tmp: Path) -> Path:
    root = tmp / "repo"
    shutil.copytree(ROOT / "proto", root / "proto")
    for tree in GENERATED:
        shutil.copytree(ROOT / tree, root / tree, ignore=shutil.ignore_patterns("__pycache__"))
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
    proto.write_text(
        proto.read_text().replace("bool replayed = 6;", "bool replayed = 6;\n  // New.\n  string x = 100;")
    )
    done = _check(root)
    assert done.returncode == 1
    for stale in (
        "clients/python-protos/src/smartpush/gateway/v1/push_service_pb2.py",
        "clients/typescript/src/gen/smartpush/gateway/v1/push_service_pb.ts",
        "clients/go/src/github.com/smartpush-gateway/go/smartpush/gateway/v1/push_service.pb.go",
    ):
        assert f"stale {stale}" in done.stderr


@pytest.mark.parametrize(
    "stub",
    [
        "clients/python-protos/src/smartpush/gateway/v1/errors_pb2.pyi",
        "clients/typescript/src/gen/smartpush/gateway/v1/errors_pb.ts",
        "clients/go/src/github.com/smartpush-gateway/go/smartpush/gateway/v1/errors.pb.go",
    ],
)
def test_hand_edited_stub_is_caught(tmp_path: Path, stub: str) -> None:
    root = _copy(tmp_path)
    path = root / stub
    path.write_text(path.read_text() + "\n// edited by hand\n")
    done = _check(root)
    assert done.returncode == 1
    assert f"stale {stub}" in done.stderr


def test_stray_file_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "clients/typescript/src/gen/smartpush/gateway/v1/old_pb.ts").write_text("// left over\n")
    done = _check(root)
    assert done.returncode == 1
    assert "stray file" in done.stderr
