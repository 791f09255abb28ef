"""The Grafana dashboard queries only metrics and labels a running gateway actually exports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from gateway.emulator import DEMO_TEMPLATE_ID
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
# Added by the collector's resource_to_telemetry_conversion (deploy/otel-collector.yaml), or by PromQL.
NOT_FROM_THE_GATEWAY = {"service_name", "le"}


def scrape_after_traffic() -> str:
    listen, metrics = f"127.0.0.1:{free_port()}", free_port()
    env = {**os.environ, "SMARTPUSH_GATEWAY_TELEMETRY__PROMETHEUS_LISTEN": f"127.0.0.1:{metrics}"}
    argv = [str(BIN / "smartpush-gateway"), "serve", "--emulator", "--listen", listen]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = "".join(proc.stdout.readline() for _ in range(2))
        emulator = re.search(r"emulator on (\S+)", banner)
        assert emulator, banner
        # One retried call (a 503 first), one good, one refused by validation.
        fault = {"http_status": 503, "count": 1}
        httpx.post(emulator.group(1) + "/_emulator/faults/next", json=fault).raise_for_status()
        send = [str(BIN / "smartpush-gateway"), "send", "--target", listen, "--project", "p", "--sub", "u",
                "--template", DEMO_TEMPLATE_ID, "--surface", "COMPANION"]  # fmt: skip
        for extra in ([], [], ["--button-text", "x" * 31]):
            subprocess.run([*send, *extra], capture_output=True, timeout=30, check=False)
        return httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_dashboard_metric_and_label_names_exist() -> None:
    exposition = scrape_after_traffic()
    series: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if match and not line.startswith("#"):
            labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=", match.group(3) or ""))
            series.setdefault(match.group(1), set()).update(labels)

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    checked = 0
    for expr in exprs:
        names = re.findall(r"([a-z_][a-z0-9_]*)\{", expr) + re.findall(r"label_values\(([a-z_][a-z0-9_]*)", expr)
        assert names, expr
        for name in names:
            assert name in series, f"{name} is not exported (have: {sorted(series)})"
            wanted = set(re.findall(r"by \(([^)]*)\)", expr))
            labels = {label.strip() for group in wanted for label in group.split(",")} - NOT_FROM_THE_GATEWAY
            assert labels <= series[name], f"{name}: {labels - series[name]} not among {series[name]}"
            checked += 1
    assert checked >= 10
    # Every instrument the gateway defines is on the dashboard.
    on_dashboard = " ".join(exprs)
    for family in (
        "rpc_server_call_duration_seconds", "rpc_server_active_requests", "http_client_request_duration_seconds",
        "smartpush_results", "smartpush_token_refreshes", "smartpush_retries", "smartpush_validation_failures",
        "smartpush_state_file_size_bytes",
    ):  # fmt: skip
        assert family in on_dashboard, family
