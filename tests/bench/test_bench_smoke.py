"""`make bench-smoke`: the benchmark harness runs end to end. Nothing here is about speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_harness_runs_every_scenario_and_writes_its_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "smoke.json").read_text())
    seen = {(r["scenario"], r["target"]) for r in doc["rows"]}
    assert seen == {
        ("c=1", "emulator-direct"),
        *{(s, t) for s in ("c=1", "c=64") for t in ("gateway", "gateway+otel", "echo")},
        ("c=64", "gateway+otel x2"),
        ("batch x100", "gateway"),
        *{("c=256 @50ms", t) for t in ("gateway", "gateway+otel", "gateway+otel x2")},
    }
    for row in doc["rows"]:
        assert row["rps"] > 0, row
        assert row["errors"] == 0, row
    # One token per gateway process (4) and the direct loader's: the harness counts them.
    assert doc["summary"]["token requests (want 5: one per gateway process, 4, and the direct loader's)"] == 5
    assert "gateway+otel / echo throughput at c=64" in doc["summary"]
    assert "SendBatch x100 / Send recipients per second (gateway)" in doc["summary"]
    assert (tmp_path / "smoke.png").stat().st_size > 0
    assert "gateway+otel / echo throughput at c=64" in proc.stdout
