"""Instructions per call, counted by callgrind: the repeatable companion of bench/run.py.

Wall-clock and CPU-time figures on this machine drift by tens of percent between runs minutes
apart; instruction counts do not (a run repeats within a few percent). Each server runs under
`valgrind --tool=callgrind` (instrumentation switched on after warm-up), the bench's load
generator drives it for a while at c=8, and the instructions its threads executed are divided by
the calls answered. Rows: the reference forwarder, the gateway with the bench's features (telemetry
off, on at full sampling to a discarding OTLP sink, keyed sends, sends to 10,000 users in turn so
each send's per-user window is its own), the gateway with one feature taken away at a time (caller
identity, quotas, the access log; and all three: what each costs), and ratios to the forwarder. With `--compiled DIR`
(`make bench-instructions`) the gateway rows run the shipped, mypyc-compiled build and one more,
`gateway source`, the sources.
Counts are of user-space instructions only (the kernel's share of a syscall is not in them), and
valgrind runs threads one at a time, so treat them as the cost of the Python and C code paths.
Every row runs under Python's own allocator, as in production (callgrind needs no
`PYTHONMALLOC=malloc`; with it on some rows only, glibc's malloc added ~90 k to each of those).

    python -m bench.instructions [--seconds 20] [--only gateway,gateway+otel,...] [--keep DIR] [--compiled DIR]

Needs valgrind (Debian's package); prints nothing else and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.ports import free_port
from bench.run import (
    BIN,
    ROOT,
    WITHOUT,
    Proc,
    drive,
    features_config,
    features_without,
    gateway_env,
    start,
    start_sink_and_emulator,
)

ROWS = (
    "forwarder",
    "gateway",
    "gateway+otel",
    "gateway keyed",
    "gateway 10k users",
    "gateway source",
    *WITHOUT,  # the gateway with a feature taken away (bench/run.py): what each costs
)


def _total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    return 0


def measure(row: str, seconds: float, workdir: Path, compiled: Path | None) -> dict[str, float]:
    config, token = features_config(workdir)
    ports = {k: free_port() for k in ("emulator", "server", "sink", "sink_grpc")}
    emulator_url = f"http://127.0.0.1:{ports['emulator']}"
    address = f"127.0.0.1:{ports['server']}"
    out = workdir / f"callgrind-{row.replace(' ', '-')}.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
    valgrind += [f"--callgrind-out-file={out}", str(BIN / "python")]
    procs: list[Proc] = []
    try:
        start_sink_and_emulator(ports, procs)
        if row == "forwarder":
            argv = [*valgrind, "-m", "bench.forwarder", "--listen", address, "--upstream", emulator_url]
            argv += ["--client-id", "demo-client", "--secret", "demo-secret"]
            server = start(row, argv, address, ready=b"ready")
        else:
            env = gateway_env(emulator_url, otlp_port=ports["sink_grpc"] if "otel" in row else None)
            env["SMARTPUSH_GATEWAY_STATE__SQLITE_PATH"] = str(workdir / f"{row}.sqlite3")
            # The compiled build first on the path (its extension modules win); `gateway source`: none.
            env["PYTHONPATH"] = f"{compiled}{os.pathsep}{ROOT}" if compiled and row != "gateway source" else ""
            if row in WITHOUT:
                config, without_env = features_without(config, WITHOUT[row])
                env |= without_env
            argv = [*valgrind, str(BIN / "smartpush-gateway"), "serve", "--config", str(config), "--listen", address]
            server = start(row, argv, address, env, b"listening")
        procs.append(server)
        keyed = "keyed" in row
        users = 10_000 if "users" in row else 1  # per-user quota windows: one user, or many in turn
        drive("grpc", address, 4, max(10.0, seconds / 2), token, keyed, users)  # warm: imports, token, connections
        subprocess.run(["callgrind_control", "-i", "on", str(server.popen.pid)], capture_output=True, check=True)
        latencies, errors, _ = drive("grpc", address, 8, seconds, token, keyed, users)
        subprocess.run(["callgrind_control", "-d", str(server.popen.pid)], capture_output=True, check=True)
    finally:
        for p in reversed(procs):
            p.popen.terminate()
            p.popen.wait(120)
    dumps = [p for p in workdir.glob(f"{out.name}.1-*") if re.search(r"\.1-\d+$", p.name)]
    per_thread = sorted((_total(p) for p in dumps), reverse=True)
    calls = max(len(latencies), 1)
    return {
        "calls": len(latencies),
        "errors": errors,
        "k_instructions_per_call": round(sum(per_thread) / calls / 1000, 1),
        "k_instructions_per_call_busiest_thread": round((per_thread[0] if per_thread else 0) / calls / 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per row")
    parser.add_argument("--only", help=f"comma-separated rows of {', '.join(ROWS)} (default: all that apply)")
    parser.add_argument("--keep", type=Path, help="keep each row's callgrind files here (for callgrind_annotate)")
    parser.add_argument(
        "--compiled", type=Path, help="the compiled gateway (make compiled): gateway rows run it, `gateway source` not"
    )
    args = parser.parse_args()
    compiled: Path | None = args.compiled.resolve() if args.compiled else None
    rows = args.only.split(",") if args.only else [r for r in ROWS if compiled or r != "gateway source"]
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    results: dict[str, dict[str, float]] = {}
    for row in rows:
        workdir = Path(tempfile.mkdtemp(prefix="smartpush-callgrind-"))
        try:
            results[row] = measure(row, args.seconds, workdir, compiled)
        finally:
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                for f in workdir.glob("callgrind-*"):
                    shutil.move(f, args.keep / f.name)
            shutil.rmtree(workdir, ignore_errors=True)
        r = results[row]
        print(f"{row:<16} {r['k_instructions_per_call']:>8.0f} k instr/call "
              f"({r['k_instructions_per_call_busiest_thread']:.0f} k on the busiest thread; "
              f"{r['calls']:.0f} calls, {r['errors']:.0f} errors)", flush=True)  # fmt: skip
    base = results.get("forwarder", {}).get("k_instructions_per_call")
    if base:
        for row, r in results.items():
            if row != "forwarder":
                print(f"{row} / forwarder: {r['k_instructions_per_call'] / base:.2f} x instructions per call")
    plain, keyed = results.get("gateway"), results.get("gateway keyed")
    if plain and keyed:
        print(f"keyed / unkeyed: {keyed['k_instructions_per_call'] / plain['k_instructions_per_call']:.2f} x")
    source = results.get("gateway source")
    if plain and source and compiled:
        print(f"compiled / source: {plain['k_instructions_per_call'] / source['k_instructions_per_call']:.2f} x")
    for row in WITHOUT:
        if plain and row in results:
            saved = plain["k_instructions_per_call"] - results[row]["k_instructions_per_call"]
            print(f"{row}: {saved:.0f} k less per call ({100 * saved / plain['k_instructions_per_call']:.0f} %)")
    otel = results.get("gateway+otel")
    if plain and otel:
        print(f"telemetry: +{100 * (otel['k_instructions_per_call'] / plain['k_instructions_per_call'] - 1):.0f} %")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
