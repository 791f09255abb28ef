"""Where one gateway process spends its time under load: py-spy samples it while the bench's
load generator drives it (the same features and configuration as bench/run.py), then the
samples are summed by module and by function.

    python -m bench.profile [--otel] [--keyed] [--seconds 20] [--native]

Writes the collapsed stacks (flamegraph input) to bench/results/profile-*.txt and prints the
top entries: `self` is time in the function itself, `total` includes what it calls.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.ports import free_port
from bench.run import BIN, ROOT, Proc, drive, features_config, gateway_env, start, start_sink_and_emulator


def _summarise(collapsed: Path, top: int, thread: str = "MainThread") -> None:
    """Sums the samples of one thread (the event loop's, by default: where the calls' Python runs)."""
    self_t: collections.Counter[str] = collections.Counter()
    total_t: collections.Counter[str] = collections.Counter()
    modules: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        head, _, stack = stack.partition(";")  # "thread (tid): name"
        if not head.endswith(f": {thread}"):
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        for name in set(frames):
            total_t[name] += count
        leaf = frames[-1]
        self_t[leaf] += count
        # "function (path/to/module.py:line)" -> the module path from site-packages or the repo.
        where = leaf.rpartition("(")[2].rstrip(")").rsplit(":", 1)[0]
        for marker in ("site-packages/", "/work/", "lib/python3"):
            if marker in where:
                where = where.split(marker, 1)[1]
                break
        modules[where.split("/")[0] if "/" in where else where] += count
    print(f"{samples} samples of {thread}")
    for title, counter in (("by top-level module (self)", modules), ("self", self_t), ("total", total_t)):
        print(f"\n{title}:")
        for name, count in counter.most_common(top):
            print(f"{100 * count / samples:6.1f}%  {name[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otel", action="store_true", help="telemetry on at full sampling (to a discarding sink)")
    parser.add_argument("--keyed", action="store_true", help="an idempotency key per send")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--native", action="store_true", help="include C frames (grpc core, sqlite, ...)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--thread", default="MainThread", help="whose samples to sum (sqlite-store, ...)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="smartpush-profile-"))
    config, token = features_config(workdir)
    ports = {k: free_port() for k in ("emulator", "gateway", "sink", "sink_grpc")}
    emulator_url = f"http://127.0.0.1:{ports['emulator']}"
    env = gateway_env(emulator_url, otlp_port=ports["sink_grpc"] if args.otel else None)
    env["SMARTPUSH_GATEWAY_STATE__SQLITE_PATH"] = str(workdir / "state.sqlite3")
    procs: list[Proc] = []
    try:
        start_sink_and_emulator(ports, procs)
        address = f"127.0.0.1:{ports['gateway']}"
        serve = [str(BIN / "smartpush-gateway"), "serve", "--config", str(config), "--listen", address]
        gateway = start("gateway", serve, address, env, b"listening")
        procs.append(gateway)
        drive("grpc", address, 8, 2.0, token)  # warm: token, connections, message-id block
        name = f"profile-{'otel' if args.otel else 'off'}{'-keyed' if args.keyed else ''}.txt"
        out = ROOT / "bench" / "results" / name
        spy = [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", "250", "--threads", "-o", str(out)]
        spy += ["--duration", str(int(args.seconds)), "--pid", str(gateway.popen.pid)]
        spy += ["--native"] if args.native else []
        recorder = threading.Thread(target=subprocess.run, args=(spy,), kwargs={"capture_output": True}, daemon=True)
        recorder.start()
        latencies, errors, _ = drive("grpc", address, args.concurrency, args.seconds, token, args.keyed)
        recorder.join(60)
        print(f"{len(latencies) / args.seconds:.0f} sends/s, {errors} errors (under the profiler: slower than bench)")
        _summarise(out, args.top, args.thread)
    finally:
        for p in reversed(procs):
            p.popen.terminate()
            p.popen.wait(15)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
