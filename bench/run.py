"""The benchmark: ratios measured side by side in one run, on this machine.

Starts the emulator, two gateways (telemetry off; on at full sampling, exporting OTLP to a
sink), and an echo server built from the same proto (the ceiling), each in its own process on
loopback; drives them with load-generator processes; prints one table and writes JSON (and a
chart when matplotlib is installed) to bench/results/. Asserts nothing: `--smoke` only proves
the harness runs.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    address: str

    def pids(self) -> list[int]:
        """The process and its children (`serve --workers N` supervises N workers)."""
        pid = self.popen.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, children)]

    def cpu_s(self) -> float:
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / TICKS

    def rss_mb(self) -> float:
        """Resident memory of the whole process tree."""
        total = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024


def start(name: str, argv: list[str], address: str, env: dict[str, str] | None = None, ready: bytes = b"") -> Proc:
    popen = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    assert popen.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not select.select([popen.stdout], [], [], 1.0)[0]:
            continue
        line = popen.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited early")
        if ready in line:
            return Proc(name, popen, address)
    raise RuntimeError(f"{name} did not start")


@dataclass
class Row:
    scenario: str
    target: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_call: float | None = None
    rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def drive(mode: str, target: str, concurrency: int, duration: float) -> tuple[list[float], int, int]:
    procs = 1 if concurrency <= 16 else 2
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    loaders = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.load",
                "--mode",
                mode,
                "--target",
                target,
                "--concurrency",
                str(c),
                "--duration",
                str(duration),
                "--channels",
                str(min(4, c)),
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for c in per
    ]
    latencies: list[float] = []
    errors = recipients = 0
    for loader in loaders:
        out, _ = loader.communicate(timeout=duration + 60)
        result = json.loads(out.decode().strip().splitlines()[-1])
        latencies += result["latencies"]
        errors += result["errors"]
        recipients += result.get("recipients", len(result["latencies"]))
    return latencies, errors, recipients


def measure(scenario: str, proc: Proc | None, mode: str, target: str, c: int, duration: float) -> Row:
    cpu0 = proc.cpu_s() if proc else 0.0
    latencies, errors, recipients = drive(mode, target, c, duration)
    cpu1 = proc.cpu_s() if proc else 0.0
    n = len(latencies)
    qs = statistics.quantiles(latencies, n=100) if n >= 2 else [latencies[0] if latencies else 0.0] * 99
    # rps counts recipients (one per Send, `batch` per SendBatch); p50/p99 are per call.
    rate = recipients / duration
    row = Row(scenario, proc.name if proc else "emulator-direct", c, rate, qs[49] * 1000, qs[98] * 1000, errors)
    if proc and recipients:
        row.cpu_us_per_call = (cpu1 - cpu0) / recipients * 1e6
        row.rss_mb = proc.rss_mb()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, to prove the harness runs")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--soak", type=float, default=0.0, help="also run c=64 this long, sampling RSS")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    duration = 1.0 if args.smoke else args.duration
    ports = {k: free_port() for k in ("sink", "sink_grpc", "emulator", "off", "on", "on2", "echo")}
    emulator_url = f"http://127.0.0.1:{ports['emulator']}"
    base_env = {
        "SMARTPUSH_GATEWAY_AUTH__MODE": "none",
        "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": emulator_url,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": "demo-client",
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": "demo-secret",
        "SMARTPUSH_GATEWAY_LOG_FORMAT": "json",
        "SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": ":memory:",
        "MALLOC_ARENA_MAX": "2",  # as deploy/Dockerfile sets it
    }
    on_env = {
        **base_env,
        # OTLP/gRPC, as deploy/k8s and deploy/docker-compose.yml export (http/protobuf: the same CPU
        # per call, ~4 MB more RSS for the requests stack the SDK's HTTP exporter brings).
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['sink_grpc']}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    gw = [str(BIN / "smartpush-gateway"), "serve", "--listen"]
    procs: list[Proc] = []
    try:
        procs.append(
            start(
                "sink",
                [
                    sys.executable,
                    "-m",
                    "bench.otlp_sink",
                    "--port",
                    str(ports["sink"]),
                    "--grpc-port",
                    str(ports["sink_grpc"]),
                ],
                "",
                ready=b"ready",
            )
        )
        emulator = start(
            "emulator",
            [str(BIN / "smartpush-gateway"), "emulator", "--listen", f"127.0.0.1:{ports['emulator']}"],
            emulator_url,
            ready=b"emulator on",
        )
        procs.append(emulator)
        off = start("gateway", [*gw, f"127.0.0.1:{ports['off']}"], f"127.0.0.1:{ports['off']}", base_env, b"listening")
        on = start("gateway+otel", [*gw, f"127.0.0.1:{ports['on']}"], f"127.0.0.1:{ports['on']}", on_env, b"listening")
        echo = start(
            "echo",
            [sys.executable, "-m", "bench.echo", "--listen", f"127.0.0.1:{ports['echo']}"],
            f"127.0.0.1:{ports['echo']}",
            ready=b"ready",
        )
        # The same, as two worker processes sharing the port (serve --workers 2).
        on2 = start(
            "gateway+otel x2",
            [*gw, f"127.0.0.1:{ports['on2']}", "--workers", "2"],
            f"127.0.0.1:{ports['on2']}",
            on_env,
            b"listening",
        )
        procs += [off, on, on2, echo]  # fmt: skip
        rows: list[Row] = []
        rows.append(measure("c=1", None, "http", emulator_url, 1, duration))
        for p in (off, on, echo):
            rows.append(measure("c=1", p, "grpc", p.address, 1, duration))
        for p in (off, on, on2, echo):
            rows.append(measure("c=64", p, "grpc", p.address, 8 if args.smoke else 64, duration))
        # SendBatch of 100 beside Send, in recipients per second of the same gateway process.
        rows.append(measure("batch x100", off, "batch", off.address, 2 if args.smoke else 8, duration))
        slow_c, rtt = (16, 0.05) if args.smoke else (256, 0.05)
        httpx.put(f"{emulator_url}/_emulator/faults", json={"latency_ms": rtt * 1000}).raise_for_status()
        for p in (off, on, on2):
            row = measure("c=256 @50ms", p, "grpc", p.address, slow_c, duration)
            row.extra["ideal_rps"] = slow_c / rtt
            rows.append(row)
        httpx.delete(f"{emulator_url}/_emulator/faults").raise_for_status()
        soak: list[tuple[float, float]] = []
        if args.soak:
            soak = run_soak(on, args.soak)
        stats = httpx.get(f"{emulator_url}/_emulator/stats").json()
        summary = summarise(rows, stats, soak)
        print_table(rows, summary)
        write(args.out, rows, summary, smoke=args.smoke)
    finally:
        for p in reversed(procs):  # gateways before the sink they flush to
            p.popen.terminate()
            try:
                p.popen.wait(15)
            except subprocess.TimeoutExpired:
                p.popen.kill()
    return 0


def run_soak(proc: Proc, seconds: float) -> list[tuple[float, float]]:
    samples: list[tuple[float, float]] = []
    argv = ["-m", "bench.load", "--target", proc.address, "--concurrency", "64", "--duration", str(seconds)]
    loader = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, cwd=ROOT)  # only RSS matters
    start_t = time.monotonic()
    while loader.poll() is None:
        samples.append((time.monotonic() - start_t, proc.rss_mb()))
        time.sleep(min(10.0, seconds / 12))
    loader.communicate()
    return samples


def _find(rows: list[Row], scenario: str, target: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.target == target), None)


def summarise(rows: list[Row], stats: dict[str, int], soak: list[tuple[float, float]]) -> dict[str, Any]:
    # One token per gateway process is the target; the direct-to-emulator loader takes one more.
    out: dict[str, Any] = {
        "token requests (want 5: one per gateway process, 4, and the direct loader's)": stats.get("token", 0)
    }
    echo64 = _find(rows, "c=64", "echo")
    for name in ("gateway", "gateway+otel", "gateway+otel x2"):
        g64 = _find(rows, "c=64", name)
        if g64 and echo64 and echo64.rps:
            out[f"{name} / echo throughput at c=64"] = round(g64.rps / echo64.rps, 3)
        g1, direct = _find(rows, "c=1", name), _find(rows, "c=1", "emulator-direct")
        if g1 and direct:
            out[f"{name} added p50 at c=1 (ms)"] = round(g1.p50_ms - direct.p50_ms, 3)
        slow = _find(rows, "c=256 @50ms", name)
        if slow:
            out[f"{name} c=256 throughput / (c/RTT)"] = round(slow.rps / slow.extra["ideal_rps"], 3)
            out[f"{name} c=256 p99 / RTT"] = round(slow.p99_ms / 50.0, 3)
    off, on = _find(rows, "c=64", "gateway"), _find(rows, "c=64", "gateway+otel")
    batch = _find(rows, "batch x100", "gateway")
    if off and batch and off.rps:
        out["SendBatch x100 / Send recipients per second (gateway)"] = round(batch.rps / off.rps, 3)
    if off and on and off.rps:
        out["telemetry cost at c=64 (share of throughput)"] = round(1 - on.rps / off.rps, 3)
    if soak:
        out["soak rss MB (first, last, max)"] = (soak[0][1], soak[-1][1], max(s for _, s in soak))
    return out


def print_table(rows: list[Row], summary: dict[str, Any]) -> None:
    head = f"{'scenario':<13}{'target':<17}{'c':>5}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}"
    print(f"{head}{'cpu us/call':>13}{'rss MB':>8}{'err':>5}")
    for r in rows:
        cpu = f"{r.cpu_us_per_call:.0f}" if r.cpu_us_per_call is not None else "-"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        line = f"{r.scenario:<13}{r.target:<17}{r.concurrency:>5}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
        print(f"{line}{cpu:>13}{rss:>8}{r.errors:>5}")
    for k, v in summary.items():
        print(f"  {k}: {v}")


def write(out: Path, rows: list[Row], summary: dict[str, Any], *, smoke: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    doc = {"when": stamp, "smoke": smoke, "cpus": os.cpu_count(), "rows": [asdict(r) for r in rows], "summary": summary}
    name = "smoke.json" if smoke else "latest.json"
    (out / name).write_text(json.dumps(doc, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"{r.scenario}\n{r.target}" for r in rows]
    ax.bar(
        labels,
        [r.rps for r in rows],
        color=["#888" if r.target in ("echo", "emulator-direct") else "#2a7" for r in rows],
    )
    ax.set_ylabel("requests per second")
    ax.set_title(f"smartpush-gateway benchmark ({stamp}, {os.cpu_count()} CPUs)")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / ("smoke.png" if smoke else "latest.png"), dpi=110)


if __name__ == "__main__":
    sys.exit(main())
