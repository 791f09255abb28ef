"""`buf breaking` (FILE) against the committed baseline fails on breaking edits of a copy of proto/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"
PUSH = "smartpush/gateway/v1/push_service.proto"
DELIVERY = "smartpush/gateway/v1/delivery.proto"


def _breaking(tmp: Path, file: str, old: str, new: str) -> subprocess.CompletedProcess[str]:
    proto = tmp / "proto"
    shutil.copytree(ROOT / "proto", proto)
    path = proto / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return subprocess.run(
        [str(BUF), "breaking", str(proto), "--against", str(ROOT / "proto/baseline.binpb")],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "complaint"),
    [
        (PUSH, "  string callback_url = 9;\n", "", "deleted"),
        (PUSH, "string idempotency_key = 7;", "string idempotency_key = 17;", "idempotency_key"),
        (DELIVERY, "SURFACE_SBERBOX = 2;", "SURFACE_SBER_BOX = 2;", "SURFACE_SBERBOX"),
        (PUSH, "string sub = 5;", "bytes sub = 5;", "type"),
    ],
    ids=["removed field", "renumbered field", "renamed enum value", "changed type"],
)
def test_breaking_change_fails(tmp_path: Path, file: str, old: str, new: str, complaint: str) -> None:
    done = _breaking(tmp_path, file, old, new)
    assert done.returncode != 0
    assert complaint in done.stdout + done.stderr


def test_adding_a_field_is_not_breaking(tmp_path: Path) -> None:
    done = _breaking(
        tmp_path, PUSH, "  bool replayed = 6;\n", "  bool replayed = 6;\n  // A new field.\n  string note = 100;\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
