"""Memory of keyed sends: the RSS of one gateway process before and after N keyed sends, with
the state in the store (SQLite file or a real redis-server), not in the process.

    python -m bench.state_memory --sends 100000 --store sqlite
    python -m bench.state_memory --sends 100000 --store redis

Prints RSS at the start and after every 20% of the sends, the growth per key, and the size of
the state in the store. The in-process cache this replaced grew ~2.1 KB per key (issue 14).
Asserts nothing; `budget_mb` in the JSON is the pod's limit (256 MiB) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, push_service_pb2_grpc, template_pb2

from bench.ports import free_port
from gateway.emulator import DEMO_TEMPLATE_ID

BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
BUDGET_MB = 256


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def _wait_for(proc: subprocess.Popen[str], mark: str) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if mark in line:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited")
    raise RuntimeError(f"{proc.args!r} did not print {mark!r}")


def _request(i: int) -> push_service_pb2.SendRequest:
    return push_service_pb2.SendRequest(
        project_id="1e1b2a4c-8f52-4b43-9c1e-3a2f0f1b7d11",
        sub="ab" * 40,
        idempotency_key=f"bench-{i:08d}",
        delivery=delivery_pb2.DeliveryConfig(
            delivery_mode=delivery_pb2.DELIVERY_MODE_BROADCAST,
            destinations=[delivery_pb2.Destination(surface=delivery_pb2.SURFACE_COMPANION)],
            template_content=template_pb2.TemplateContent(id=DEMO_TEMPLATE_ID),
        ),
    )


async def _drive(target: str, start: int, count: int, concurrency: int) -> int:
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = push_service_pb2_grpc.PushServiceStub(channel)
        queue = iter(range(start, start + count))

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                try:
                    await stub.Send(_request(i), timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="state-memory-"))
    procs: list[subprocess.Popen[str]] = []
    try:
        emu_port, gw_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPUSH_GATEWAY_")}
        emulator = subprocess.Popen(
            [str(BIN / "smartpush-gateway"), "emulator", "--listen", f"127.0.0.1:{emu_port}"],
            env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(emulator)
        _wait_for(emulator, "emulator on")
        gw_env = {
            **env,
            "SMARTPUSH_GATEWAY_AUTH__MODE": "none",
            "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": f"http://127.0.0.1:{emu_port}",
            "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": "demo-client",
            "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": "demo-secret",
            "SMARTPUSH_GATEWAY_LOG_LEVEL": "WARNING",
            "MALLOC_ARENA_MAX": "2",  # as deploy/Dockerfile sets it
        }
        redis_port = None
        if args.store == "redis":
            redis_port = free_port()
            redis = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            procs.append(redis)
            time.sleep(0.5)
            gw_env["SMARTPUSH_GATEWAY_STATE__BACKEND"] = "redis"
            gw_env["SMARTPUSH_GATEWAY_STATE__REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        else:
            gw_env["SMARTPUSH_GATEWAY_STATE__SQLITE_PATH"] = str(tmp / "state.sqlite3")
        gateway = subprocess.Popen(
            [str(BIN / "smartpush-gateway"), "serve", "--listen", f"127.0.0.1:{gw_port}"],
            env=gw_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(gateway)
        _wait_for(gateway, "listening")
        target = f"127.0.0.1:{gw_port}"

        warm = min(2000, args.sends // 10)
        asyncio.run(_drive(target, 0, warm, args.concurrency))  # imports, pools and caches settle
        samples: list[dict[str, float]] = [{"sends": warm, "rss_mb": rss_mb(gateway.pid)}]
        print(f"store={args.store}: RSS after {warm:,} warm-up sends: {samples[0]['rss_mb']:.1f} MB", flush=True)
        step = max(1, (args.sends - warm) // 5)
        done, errors, started = warm, 0, time.perf_counter()
        while done < args.sends:
            n = min(step, args.sends - done)
            errors += asyncio.run(_drive(target, done, n, args.concurrency))
            done += n
            samples.append({"sends": done, "rss_mb": rss_mb(gateway.pid)})
            print(f"  after {done:>7,} keyed sends: RSS {samples[-1]['rss_mb']:.1f} MB", flush=True)
        elapsed = time.perf_counter() - started
        growth = samples[-1]["rss_mb"] - samples[0]["rss_mb"]
        per_key = growth * 2**20 / max(1, done - warm)
        if args.store == "sqlite":
            stored = sum(p.stat().st_size for p in tmp.glob("state.sqlite3*")) / 2**20
        else:
            info = subprocess.run(
                ["redis-cli", "-p", str(redis_port), "info", "memory"], capture_output=True, text=True, check=False
            ).stdout
            used = next((line.split(":")[1] for line in info.splitlines() if line.startswith("used_memory:")), "0")
            stored = int(used) / 2**20
        result: dict[str, Any] = {
            "store": args.store,
            "sends": done,
            "errors": errors,
            "sends_per_s": round((done - warm) / elapsed, 1),
            "rss_mb": [round(s["rss_mb"], 1) for s in samples],
            "rss_growth_mb": round(growth, 1),
            "rss_growth_bytes_per_key": round(per_key, 1),
            "state_in_store_mb": round(stored, 1),
            "budget_mb": BUDGET_MB,
        }
        print(
            f"store={args.store}: {done:,} keyed sends ({errors} errors, {result['sends_per_s']}/s); "
            f"RSS {samples[0]['rss_mb']:.1f} -> {samples[-1]['rss_mb']:.1f} MB "
            f"({per_key:.0f} B per key; the in-process cache grew ~2,100 B per key); "
            f"state in the store {stored:.1f} MB; pod budget {BUDGET_MB} MiB",
            flush=True,
        )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"state-memory-{args.store}.json").write_text(json.dumps(result, indent=2))
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
