"""The benchmark: ratios measured side by side in one run, on this machine.

Starts the emulator, gateways with the production features in place (callers identified by JWT,
grants, a caller rate and project/user quota windows charged on every send, state in an SQLite
file) — telemetry off, on at full sampling exporting OTLP to a sink, and on as `--workers 2` —,
the reference forwarder (bench/forwarder.py: parse → JSON → POST → parse → answer, the least any
gateway on this stack must do) and an echo server built from the same proto (the gRPC ceiling),
each in its own process on loopback. With `--compiled DIR` (`make bench`) the gateways run the
shipped build (mypyc; scripts/build_compiled.py) and one more gateway, telemetry off, runs the
sources beside them: what compiling buys, measured in the same rounds. Drives them with
load-generator processes; prints one table and the ratios and writes JSON (and a chart when
matplotlib is installed) to bench/results/.
Asserts nothing: `--smoke` only proves the harness runs.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.ports import free_port
from gateway.state.sqlite_store import file_sizes

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")


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


def gateway_env(emulator_url: str, otlp_port: int | None = None) -> dict[str, str]:
    """A bench gateway's environment: the emulator's demo profile, JSON logs, the image's malloc
    arenas; with `otlp_port`, telemetry on at full sampling to that sink."""
    env = {
        "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": emulator_url,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": "demo-client",
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": "demo-secret",
        "SMARTPUSH_GATEWAY_LOG_FORMAT": "json",
        "MALLOC_ARENA_MAX": "2",  # as deploy/Dockerfile sets it
    }
    if otlp_port is not None:
        # OTLP/gRPC, as deploy/k8s and deploy/docker-compose.yml export (http/protobuf: the same CPU
        # per call, ~4 MB more RSS for the requests stack the SDK's HTTP exporter brings).
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_TRACES_SAMPLER": "always_on",
        }
    return env


def start_sink_and_emulator(ports: dict[str, int], procs: list[Proc]) -> None:
    """The discarding OTLP sink (ports `sink`, `sink_grpc`) and the emulator (port `emulator`),
    started and added to `procs` (stopped by the caller, last first)."""
    sink_argv = ["-m", "bench.otlp_sink", "--port", str(ports["sink"]), "--grpc-port", str(ports["sink_grpc"])]
    procs.append(start("sink", [sys.executable, *sink_argv], "", ready=b"ready"))
    address = f"127.0.0.1:{ports['emulator']}"
    argv = [str(BIN / "smartpush-gateway"), "emulator", "--listen", address]
    procs.append(start("emulator", argv, f"http://{address}", ready=b"emulator on"))


def median_row(rows: list[Row]) -> Row:
    """One row from several rounds of the same measurement: the median of each figure."""
    first = rows[0]

    def med(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    row = Row(
        first.scenario,
        first.target,
        first.concurrency,
        statistics.median(r.rps for r in rows),
        statistics.median(r.p50_ms for r in rows),
        statistics.median(r.p99_ms for r in rows),
        sum(r.errors for r in rows),
        med([r.cpu_us_per_call for r in rows]),
        max((r.rss_mb for r in rows if r.rss_mb is not None), default=None),
    )
    row.extra["rounds"] = [round(r.rps) for r in rows]
    row.extra["rounds_cpu"] = [None if r.cpu_us_per_call is None else round(r.cpu_us_per_call) for r in rows]
    return row


def rotated(items: list[T], round_index: int) -> list[T]:
    """Round `round_index`'s order: each round starts one row later, so no row always runs first
    (a place in the order was a bias no number of rounds removed). The order stays a cycle: each
    row still follows the same neighbour, so a row should not follow load on its own process."""
    if not items:
        return items
    start = round_index % len(items)
    return items[start:] + items[:start]


def paired(a: Row, b: Row, figure: str) -> float | None:
    """The median of `a` over `b` round by round (`per_round`): the headline ratio. A ratio of the
    two rows' medians mixes rounds minutes apart, and this machine drifts by tens of percent."""
    ratios = per_round(a, b, figure)
    return round(statistics.median(ratios), 3) if ratios else None


def per_round(a: Row, b: Row, figure: str) -> list[float]:
    """`figure` ("rounds" for rps, "rounds_cpu") of `a` over `b`, round by round: rows of one round
    ran a minute apart, so each ratio carries little of the drift between rounds."""
    xs, ys = a.extra.get(figure, []), b.extra.get(figure, [])
    if len(xs) != len(ys) or len(xs) < 2:
        return []
    return [round(x / y, 3) for x, y in zip(xs, ys, strict=True) if x is not None and y]


def features_config(directory: Path) -> tuple[Path, str]:
    """The gateways' configuration with identity, grants and quotas in place, and a caller's token.

    Limits are far above what the bench reaches: every send is identified, authorized and charged
    (a caller rate and project windows overall and per user, in the state store), none refused.
    """
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "bench", "use": "sig", "alg": "RS256"}]}))
    now = int(time.time())
    claims = {"iss": "bench", "aud": "smartpush-gateway", "sub": "bench-loader", "iat": now, "exp": now + 86400}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})
    huge = 1_000_000_000
    config = {
        "auth": {"mode": "jwt", "jwt": {"jwks_file": str(jwks), "issuer": "bench", "audience": "smartpush-gateway"}},
        "callers": {
            "bench": {
                "match": "bench-loader",
                "profiles": ["default"],
                "projects": ["*"],
                "templates": ["*"],
                "rate": {"per_second": huge, "burst": huge},
            }
        },
        "quotas": {"projects": {"*": {"per_minute": huge, "per_day": huge, "per_user_per_day": huge}}},
    }
    path = directory / "gateway.json"  # JSON is YAML
    path.write_text(json.dumps(config))
    return path, token


# What each feature costs: the gateway with it taken away (the bench's configuration otherwise).
# no-auth: `auth.mode: none` (no identity, so no callers: no grants and no caller rate; the project
# windows stay); no-quotas: no caller rate, no project windows; no-log: log level WARNING (no access
# line); bare: all three.
WITHOUT = {
    "gateway no-auth": {"auth"},
    "gateway no-quotas": {"quotas"},
    "gateway no-log": {"log"},
    "gateway bare": {"auth", "quotas", "log"},
}


def features_without(config: Path, features: set[str]) -> tuple[Path, dict[str, str]]:
    """The bench's configuration with `features` taken away, and the environment that goes with it."""
    doc = json.loads(config.read_text())
    if "quotas" in features:
        del doc["callers"]["bench"]["rate"], doc["quotas"]
    if "auth" in features:  # callers are named by their identity: with none, no grants and no caller rate
        doc["auth"] = {"mode": "none"}
        del doc["callers"]
    path = config.with_name(f"without-{'-'.join(sorted(features))}.json")
    path.write_text(json.dumps(doc))
    return path, {"SMARTPUSH_GATEWAY_LOG_LEVEL": "WARNING"} if "log" in features else {}


def drive(
    mode: str,
    target: str,
    concurrency: int,
    duration: float,
    token: str | None = None,
    keyed: bool = False,
    users: int = 1,
) -> tuple[list[float], int, int]:
    procs = 1 if concurrency <= 16 else 2
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    extra = [*(["--token", token] if token else []), *(["--keyed"] if keyed else []), "--users", str(users)]
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
                *extra,
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


def measure(
    scenario: str,
    proc: Proc | None,
    mode: str,
    target: str,
    c: int,
    duration: float,
    token: str | None = None,
    keyed: bool = False,
) -> Row:
    cpu0 = proc.cpu_s() if proc else 0.0
    latencies, errors, recipients = drive(mode, target, c, duration, token, keyed)
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
    parser.add_argument("--soak", type=float, default=0.0, help="also run keyed sends at c=64 this long, sampling RSS")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds of the compared rows (each round in a rotated order)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--compiled", type=Path, help="the compiled gateway (make compiled): the gateways run it, one more the sources"
    )
    args = parser.parse_args()
    duration = 1.0 if args.smoke else args.duration
    names = ("sink", "sink_grpc", "emulator", "off", "on", "on2", "source", "bare", "forwarder", "echo")
    ports = {k: free_port() for k in names}
    emulator_url = f"http://127.0.0.1:{ports['emulator']}"
    workdir = Path(tempfile.mkdtemp(prefix="smartpush-bench-"))
    config, token = features_config(workdir)
    source_env = gateway_env(emulator_url)
    # The compiled build first on the path: its extension modules are found before the sources.
    build = {"PYTHONPATH": os.pathsep.join([str(args.compiled.resolve()), str(ROOT)])} if args.compiled else {}
    base_env = {**source_env, **build}
    on_env = {**gateway_env(emulator_url, otlp_port=ports["sink_grpc"]), **build}

    def state(name: str) -> dict[str, str]:
        # Each gateway its own SQLite file (the embedded store, on disk); the workers of one share it.
        return {"SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": str(workdir / f"{name}.sqlite3")}

    def gateway(name: str, port: str, env: dict[str, str], *extra: str, configured: Path = config) -> Proc:
        address = f"127.0.0.1:{ports[port]}"
        argv = [str(BIN / "smartpush-gateway"), "serve", "--config", str(configured), "--listen", address, *extra]
        procs.append(started := start(name, argv, address, {**env, **state(port)}, b"listening"))
        return started  # in `procs` at once: stopped even when a later one fails to start

    procs: list[Proc] = []
    try:
        start_sink_and_emulator(ports, procs)
        off = gateway("gateway", "off", base_env)
        on = gateway("gateway+otel", "on", on_env)
        # The same, as two worker processes sharing the port (serve --workers 2).
        on2 = gateway("gateway+otel x2", "on2", on_env, "--workers", "2")
        forwarder = start(
            "forwarder",
            [
                *(sys.executable, "-m", "bench.forwarder", "--listen", f"127.0.0.1:{ports['forwarder']}"),
                *("--upstream", emulator_url, "--client-id", "demo-client", "--secret", "demo-secret"),
            ],
            f"127.0.0.1:{ports['forwarder']}",
            ready=b"ready",
        )
        procs.append(forwarder)
        echo = start(
            "echo",
            [sys.executable, "-m", "bench.echo", "--listen", f"127.0.0.1:{ports['echo']}"],
            f"127.0.0.1:{ports['echo']}",
            ready=b"ready",
        )
        procs.append(echo)
        # The sources beside the compiled build (PYTHONPATH cleared: the loader's own may hold it).
        source = gateway("gateway (source)", "source", {**source_env, "PYTHONPATH": ""}) if args.compiled else None
        # The floor of the gateway's own work: no identity, no quotas, no access log (telemetry off).
        bare_config, bare_env = features_without(config, WITHOUT["gateway bare"])
        bare = gateway("gateway bare", "bare", {**base_env, **bare_env}, configured=bare_config)
        c64 = 8 if args.smoke else 64
        rows: list[Row] = []
        rows.append(measure("c=1", None, "http", emulator_url, 1, duration))
        for p in (off, on, forwarder, echo):
            rows.append(measure("c=1", p, "grpc", p.address, 1, duration, token))
        # The rows the ratios compare, measured in interleaved rounds (each in a rotated order); a
        # ratio is the median of its rounds' ratios: this machine's speed drifts by tens of percent
        # over minutes, and a ratio of two rows measured minutes apart would carry that drift.
        # Keyed: every send with its own idempotency key, claimed and recorded in the SQLite store.
        # Batch: SendBatch of 100, in recipients per second.
        compared = [
            *(("c=64", p, "grpc", False) for p in (off, on, on2, forwarder, echo)),
            *((("c=64", source, "grpc", False),) if source is not None else ()),
            ("c=64", bare, "grpc", False),
            # The sources' gateway serves the keyed and batch load too: the builds it compares have
            # the same history (in three runs the compiled one, alone in serving them, measured
            # below the sources, against its instruction counts).
            *(("c=64 keyed", p, "grpc", True) for p in (off, on, *((source,) if source is not None else ()))),
            *(("batch x100", p, "batch", False) for p in (off, *((source,) if source is not None else ()))),
        ]
        rounds: dict[tuple[str, str], list[Row]] = {}
        for index in range(1 if args.smoke else args.rounds):
            for scenario, p, mode, keyed in rotated(compared, index):
                c = (2 if args.smoke else 8) if mode == "batch" else c64
                row = measure(scenario, p, mode, p.address, c, duration, token, keyed)
                rounds.setdefault((scenario, p.name), []).append(row)
        rows += [median_row(measured) for measured in rounds.values()]
        slow_c, rtt = (16, 0.05) if args.smoke else (256, 0.05)
        httpx.put(f"{emulator_url}/_emulator/faults", json={"latency_ms": rtt * 1000}).raise_for_status()
        for p in (off, on, on2, forwarder):
            row = measure("c=256 @50ms", p, "grpc", p.address, slow_c, duration, token)
            row.extra["ideal_rps"] = slow_c / rtt
            rows.append(row)
        httpx.delete(f"{emulator_url}/_emulator/faults").raise_for_status()
        soak: list[tuple[float, float]] = []
        if args.soak:
            soak = run_soak(on, args.soak, token)
        stats = httpx.get(f"{emulator_url}/_emulator/stats").json()
        # One token per upstream process: every gateway process, the forwarder, the direct loader.
        gateway_processes = sum(len(p.pids()) - (p is on2) for p in procs if p.name.startswith("gateway"))
        summary = summarise(rows, stats, soak, want_tokens=gateway_processes + 2)
        # What the keyed rows (and the soak) left on disk: the WAL once grew without bound here.
        summary["state MB after the run (database, WAL)"] = {
            p.name: state_mb(workdir / f"{port}.sqlite3") for p, port in ((off, "off"), (on, "on"), (on2, "on2"))
        }
        print_table(rows, summary)
        write(args.out, rows, summary, smoke=args.smoke)
    finally:
        for p in reversed(procs):  # gateways before the sink they flush to
            p.popen.terminate()
            try:
                p.popen.wait(15)
            except subprocess.TimeoutExpired:
                p.popen.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def state_mb(path: Path) -> tuple[float, float]:
    """An SQLite store's database and WAL, in MB (0 for one not there)."""
    sizes = file_sizes(path)
    return round(sizes.get("database", 0) / 1e6, 1), round(sizes.get("wal", 0) / 1e6, 1)


def run_soak(proc: Proc, seconds: float, token: str) -> list[tuple[float, float]]:
    """Keyed sends (the store in use) at c=64 for `seconds`, sampling the process's RSS."""
    samples: list[tuple[float, float]] = []
    argv = ["-m", "bench.load", "--target", proc.address, "--concurrency", "64", "--duration", str(seconds)]
    argv += ["--token", token, "--keyed"]
    loader = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, cwd=ROOT)  # only RSS matters
    start_t = time.monotonic()
    while loader.poll() is None:
        samples.append((time.monotonic() - start_t, proc.rss_mb()))
        time.sleep(min(10.0, seconds / 12))
    loader.communicate()
    return samples


def _find(rows: list[Row], scenario: str, target: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.target == target), None)


def summarise(
    rows: list[Row], stats: dict[str, int], soak: list[tuple[float, float]], want_tokens: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"token requests (one per upstream process)": [stats.get("token", 0), want_tokens]}
    echo64, fwd64 = _find(rows, "c=64", "echo"), _find(rows, "c=64", "forwarder")
    for name in ("gateway", "gateway+otel", "gateway+otel x2", "gateway bare"):
        g64 = _find(rows, "c=64", name)
        if g64 and fwd64 and fwd64.rps:
            _ratio(out, f"{name} / forwarder throughput at c=64", g64, fwd64, "rounds")
            if g64.cpu_us_per_call and fwd64.cpu_us_per_call:
                _ratio(out, f"{name} / forwarder CPU per call at c=64", g64, fwd64, "rounds_cpu")
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
    if off and on and off.rps:
        on_off = paired(on, off, "rounds")
        out["telemetry cost at c=64 (share of throughput)"] = round(1 - (on_off or on.rps / off.rps), 3)
        if on_off is not None:
            out["telemetry cost at c=64 (share of throughput), ratio of medians"] = round(1 - on.rps / off.rps, 3)
    for name, plain in (
        ("gateway", off),
        ("gateway+otel", on),
        ("gateway (source)", _find(rows, "c=64", "gateway (source)")),
    ):
        keyed = _find(rows, "c=64 keyed", name)
        if keyed and plain and keyed.rps and plain.cpu_us_per_call and keyed.cpu_us_per_call:
            _ratio(out, f"{name} keyed / unkeyed CPU per call", keyed, plain, "rounds_cpu")
            _ratio(out, f"{name} keyed / unkeyed throughput", keyed, plain, "rounds")
    source = _find(rows, "c=64", "gateway (source)")
    if off and source and source.rps:
        _ratio(out, "compiled / source throughput at c=64 (gateway)", off, source, "rounds")
        if source.cpu_us_per_call and off.cpu_us_per_call:
            _ratio(out, "compiled / source CPU per call at c=64 (gateway)", off, source, "rounds_cpu")
    batch = _find(rows, "batch x100", "gateway")
    if off and batch and off.rps:
        _ratio(out, "SendBatch x100 / Send recipients per second (gateway)", batch, off, "rounds")
    if soak:
        out["soak rss MB (first, last, max)"] = (soak[0][1], soak[-1][1], max(s for _, s in soak))
    out["targets"] = targets(out, rows)
    return out


def _ratio(out: dict[str, Any], key: str, a: Row, b: Row, figure: str) -> None:
    """`key`: `a` over `b` — the median of the round-by-round ratios when the rows ran in rounds
    (the rounds and the ratio of the medians beside it), else the ratio of the two figures."""
    whole = a.rps / b.rps if figure == "rounds" else (a.cpu_us_per_call or 0.0) / (b.cpu_us_per_call or 1.0)
    headline = paired(a, b, figure)
    out[key] = headline if headline is not None else round(whole, 3)
    if headline is not None:
        out[f"{key}, round by round"] = per_round(a, b, figure)
        out[f"{key}, ratio of medians"] = round(whole, 3)


def targets(summary: dict[str, Any], rows: list[Row]) -> dict[str, str]:
    """The issue's targets against this run's ratios: `met` or `not met`, with the figure."""

    def check(key: str, ok: Any) -> str:
        value = summary.get(key)
        return "-" if value is None else f"{value} {'met' if ok(value) else 'not met'}"

    # Per process: the `x2` row is a process tree (supervisor and two workers).
    under_load = [r.rss_mb for r in rows if r.rss_mb is not None and r.target in ("gateway", "gateway+otel")]
    return {
        "gateway / forwarder >= 0.85 (telemetry off)": check(
            "gateway / forwarder throughput at c=64", lambda v: v >= 0.85
        ),
        "gateway+otel / forwarder >= 0.75": check("gateway+otel / forwarder throughput at c=64", lambda v: v >= 0.75),
        "telemetry cost <= 15 %": check("telemetry cost at c=64 (share of throughput)", lambda v: v <= 0.15),
        "keyed costs <= 10 % more CPU per call": check("gateway keyed / unkeyed CPU per call", lambda v: v <= 1.10),
        "SendBatch x100 >= 1.5 x Send": check(
            "SendBatch x100 / Send recipients per second (gateway)", lambda v: v >= 1.5
        ),
        "RSS under load <= 100 MB per process": (
            f"{max(under_load):.0f} MB {'met' if max(under_load) <= 100 else 'not met'}" if under_load else "-"
        ),
    }


def print_table(rows: list[Row], summary: dict[str, Any]) -> None:
    head = f"{'scenario':<13}{'target':<17}{'c':>5}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}"
    print(f"{head}{'cpu us/call':>13}{'rss MB':>8}{'err':>5}")
    for r in rows:
        cpu = f"{r.cpu_us_per_call:.0f}" if r.cpu_us_per_call is not None else "-"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        line = f"{r.scenario:<13}{r.target:<17}{r.concurrency:>5}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
        spread = ""
        if len(r.extra.get("rounds", ())) > 1:
            spread = "  rounds: " + "/".join(map(str, r.extra["rounds"]))
            spread += " (cpu " + "/".join(str(c) if c is not None else "-" for c in r.extra["rounds_cpu"]) + ")"
        print(f"{line}{cpu:>13}{rss:>8}{r.errors:>5}{spread}")
    for k, v in summary.items():
        if isinstance(v, dict):
            print(f"  {k}:")
            for name, verdict in v.items():
                print(f"    {name}: {verdict}")
        else:
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
