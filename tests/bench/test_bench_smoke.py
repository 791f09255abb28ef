"""`make bench-smoke`: the benchmark harness runs end to end. Nothing here is about speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# make test's compiled pass: the harness runs that build, and the sources beside it (`make bench`).
COMPILED = os.environ.get("SMARTPUSH_TEST_COMPILED")


def test_the_harness_runs_every_scenario_and_writes_its_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--out",
            str(tmp_path),
            *(["--compiled", COMPILED] if COMPILED else []),
        ],
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
        *{(s, t) for s in ("c=1", "c=64") for t in ("gateway", "gateway+otel", "forwarder", "echo")},
        ("c=64", "gateway+otel x2"),
        ("c=64", "gateway bare"),
        ("c=64 keyed", "gateway"),
        ("c=64 keyed", "gateway+otel"),
        ("batch x100", "gateway"),
        *{("c=256 @50ms", t) for t in ("gateway", "gateway+otel", "gateway+otel x2", "forwarder")},
        *(
            [("c=64", "gateway (source)"), ("c=64 keyed", "gateway (source)"), ("batch x100", "gateway (source)")]
            if COMPILED
            else []
        ),
    }
    # Every call answered: the loaders' JWT identified them, grants and quotas let them through.
    for row in doc["rows"]:
        assert row["rps"] > 0, row
        assert row["errors"] == 0, row
    summary = doc["summary"]
    # One token per upstream process (each gateway worker, the forwarder, the direct loader).
    seen, wanted = summary["token requests (one per upstream process)"]
    assert seen == wanted == (8 if COMPILED else 7)
    for ratio in (
        "gateway / forwarder throughput at c=64",
        "gateway+otel / forwarder throughput at c=64",
        "gateway / forwarder CPU per call at c=64",
        "gateway bare / forwarder throughput at c=64",
        "gateway keyed / unkeyed CPU per call",
        "telemetry cost at c=64 (share of throughput)",
        "SendBatch x100 / Send recipients per second (gateway)",
        *(["compiled / source throughput at c=64 (gateway)"] if COMPILED else []),
    ):
        assert isinstance(summary[ratio], float), ratio
        assert ratio in proc.stdout
    # The compared rows' rounds, rps and CPU, kept beside their medians.
    keyed = next(r for r in doc["rows"] if (r["scenario"], r["target"]) == ("c=64 keyed", "gateway"))
    assert len(keyed["extra"]["rounds"]) == len(keyed["extra"]["rounds_cpu"]) >= 1
    assert set(summary["targets"]) >= {"gateway / forwarder >= 0.85 (telemetry off)", "telemetry cost <= 15 %"}
    # The state files the gateways left, reported (a WAL that grows without bound shows there).
    files = summary["state MB after the run (database, WAL)"]
    assert set(files) == {"gateway", "gateway+otel", "gateway+otel x2"}
    assert all(db >= 0 and wal >= 0 for db, wal in files.values()), files
    assert sum(files["gateway"]) > 0, files  # its keyed rows wrote records
    assert "state MB after the run" in proc.stdout
    assert (tmp_path / "smoke.png").stat().st_size > 0
