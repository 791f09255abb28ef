"""deploy/otel-collector.yaml: every pipeline names components that are defined, on the OTLP ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "otel-collector.yaml"


def test_pipelines_reference_defined_components() -> None:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    service = config["service"]
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {kind} {component} is not defined"
    assert set(service["pipelines"]) == {"traces", "metrics"}
    assert "prometheus" in service["pipelines"]["metrics"]["exporters"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    for extension in service.get("extensions", []):
        assert extension in config["extensions"]
