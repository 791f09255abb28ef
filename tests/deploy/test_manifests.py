"""deploy/ checked by real tools: kustomize renders, Kubernetes schemas validate, hadolint and checkov
pass, and what the manifests promise (probes, ports, env, paths) is what the code serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import Settings, load_settings
from gateway.emulator import DEMO_TEMPLATE_ID
from gateway.readiness import LIVENESS
from tests.helpers import free_port
from tests.jwts import Signer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "example"
CHECKOV = BIN.parent / "checkov" / "bin" / "checkov"
K8S_VERSION = "1.33.0"
# Telemetry settings the OpenTelemetry SDK reads; everything else must be a gateway setting.
OTEL_ENV = {
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
}
DOWNWARD_API_ENV = {"POD_NAME", "POD_NAMESPACE"}


def render(path: Path = OVERLAY) -> str:
    return subprocess.run(
        ["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    text = render()
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(text)
    return path, [d for d in yaml.safe_load_all(text) if d]


def kind(docs: list[dict[str, Any]], name: str, called: str = "smartpush-gateway") -> dict[str, Any]:
    """The object of that kind and name (the gateway's own unless `called` says otherwise)."""
    return next(d for d in docs if d["kind"] == name and d["metadata"]["name"] == called)


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_every_rendered_manifest_validates_against_the_schemas(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    path, docs = rendered
    assert {d["kind"] for d in docs} >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
        "ServiceAccount", "NetworkPolicy", "StatefulSet",
    }  # fmt: skip
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("where", "change"),
    [
        (
            "a misspelt probe field",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].update(grcp={}),
        ),
        ("replicas as text", lambda d: d["spec"].update(replicas="two")),
        (
            "a port as text",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="grpc"),
        ),
    ],
)
def test_a_broken_manifest_fails_validation(
    rendered: tuple[Path, list[dict[str, Any]]], tmp_path: Path, where: str, change: Any
) -> None:
    _, docs = rendered
    broken = json.loads(json.dumps(kind(docs, "Deployment")))
    change(broken)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert validate(path).returncode != 0, where


def test_hadolint_passes_on_the_dockerfile_and_fails_a_bad_one(tmp_path: Path) -> None:
    ok = subprocess.run([str(BIN / "hadolint"), str(ROOT / "deploy" / "Dockerfile")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\nCMD python -m gateway\n")
    assert subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True).returncode != 0


def test_checkov_finds_nothing_unjustified(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = rendered
    argv = [
        str(CHECKOV),
        "-f",
        str(path),
        "--framework",
        "kubernetes",
        "--quiet",
        "--compact",
        "--skip-download",
        "-o",
        "json",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, result.stdout[:4000]
    assert report["summary"]["passed"] > 50
    # Every skip carries its reason (the annotations on the workloads).
    reasons = [
        v.split("=", 1)
        for d in rendered[1]
        for k, v in d["metadata"].get("annotations", {}).items()
        if k.startswith("checkov.io/skip")
    ]
    assert report["summary"]["skipped"] == len(reasons)
    assert all(len(r) == 2 and len(r[1]) > 20 for r in reasons)


def _config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["gateway.yaml"])
    return loaded


def test_probes_ports_env_and_paths_match_the_code(rendered: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, docs = rendered
    deployment = kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    raw = _config(docs)
    # The Secret's files exist only in the pod; settings refuse unreadable ones, so point at stand-ins.
    secret_paths = {name: p.get("secret_file") for name, p in raw["profiles"].items()}
    for name, profile in raw["profiles"].items():
        (tmp_path / name).write_text("stand-in")
        profile["secret_file"] = str(tmp_path / name)
    jwks_path = raw["auth"]["jwt"]["jwks_file"]
    raw["auth"]["jwt"]["jwks_file"] = str(Signer(tmp_path).jwks)
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    settings: Settings = load_settings(config_file)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == int(settings.listen.rsplit(":", 1)[1])
    assert settings.telemetry.prometheus_listen is not None
    assert ports["metrics"] == int(settings.telemetry.prometheus_listen.rsplit(":", 1)[1])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS
    assert container["startupProbe"]["grpc"]["service"] == LIVENESS
    assert container["readinessProbe"]["grpc"].get("service", "") == ""  # the overall service: readiness

    service = kind(docs, "Service")
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port["targetPort"] == "grpc"
    assert grpc_port["appProtocol"] == "grpc"
    policy = kind(docs, "NetworkPolicy")
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    # Admitted container ports: a name resolves through the container; a number may open a range.
    admitted: set[int] = set()
    for rule in policy["spec"]["ingress"]:
        for p in rule["ports"]:
            first = named[p["port"]] if isinstance(p["port"], str) else p["port"]
            admitted.update(range(first, p.get("endPort", first) + 1))
    # Every port the Service advertises (or a scrape annotation names) is admitted, and the metrics
    # port of every worker the configuration runs (`workers`: worker i on metrics + i).
    wanted = {named.get(p["targetPort"], p["targetPort"]) for p in service["spec"]["ports"]}
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        wanted.add(int(annotations["prometheus.io/port"]))
    wanted.update(named["metrics"] + i for i in range(max(settings.workers, 8)))
    assert wanted <= admitted, wanted - admitted
    assert admitted - wanted == set(), admitted - wanted  # nothing else is open
    # The base talks to SmartPush's current documented host, not the legacy one.
    assert settings.smartpush.base_url == "https://ngw.devices.sberbank.ru:9443"

    # The drain fits in the grace period: preStop sleep + shutdown_grace_s + the telemetry flush (5 s).
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings.shutdown_grace_s + 5

    # Env: gateway settings (the names pydantic-settings reads) or the OTel SDK's own.
    for env in container["env"]:
        name = env["name"]
        if name.startswith("SMARTPUSH_GATEWAY_"):
            path = name.removeprefix("SMARTPUSH_GATEWAY_").lower().split("__")
            model: Any = Settings
            for part in path:
                assert part in model.model_fields, name
                model = model.model_fields[part].annotation
        else:
            assert name in OTEL_ENV | DOWNWARD_API_ENV, name
    assert not any("SECRET" in e["name"] and "value" in e for e in container["env"])  # secrets only as files

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert container["args"][:2] == ["--config", f"{mounts['config']['mountPath']}/gateway.yaml"]
    assert volumes["credentials"]["secret"]["secretName"] == "smartpush-credentials"
    for name, profile in settings.profiles.items():
        assert profile.secret is None
        assert str(secret_paths[name]).startswith(mounts["credentials"]["mountPath"] + "/")
    # Callers' tokens are verified against the cluster's keys, mounted from their ConfigMap.
    assert settings.auth.mode == "jwt"
    assert str(Path(jwks_path).parent) == mounts["jwks"]["mountPath"]
    assert volumes["jwks"]["configMap"]["name"] == "smartpush-gateway-jwks"
    # Read-only root: the SQLite state store must sit on a writable volume.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert str(settings.state.sqlite_path).startswith(mounts["state"]["mountPath"] + "/")
    assert "emptyDir" in volumes["state"]
    overlay_env = {e["name"]: e.get("value") for e in container["env"]}
    ca = overlay_env["SMARTPUSH_GATEWAY_SMARTPUSH__CA_BUNDLE"]
    assert ca is not None
    assert ca.startswith(mounts["ca"]["mountPath"] + "/")


def test_dockerfile_entrypoint_serves_the_manifests_config_against_the_emulator(
    rendered: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The image's command line (ENTRYPOINT + the Deployment's args), run here against the emulator."""
    _, docs = rendered
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    entrypoint = json.loads(
        next(line for line in dockerfile.splitlines() if line.startswith("ENTRYPOINT")).split(" ", 1)[1]
    )
    healthcheck = json.loads(dockerfile.split("CMD ", 1)[1].splitlines()[0])
    (container,) = kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    config = _config(docs)
    config["profiles"]["default"]["secret_file"] = str(tmp_path / "default-secret")
    (tmp_path / "default-secret").write_text("demo-secret\n")
    config["state"] = {"backend": "sqlite", "sqlite_path": str(tmp_path / "state.sqlite3")}
    signer = Signer(tmp_path)
    config["auth"]["jwt"]["jwks_file"] = str(signer.jwks)
    # The manifest's example caller, with the token its service account would present.
    (caller,) = config["callers"].values()
    (tmp_path / "token").write_text(signer.token(caller["match"]))
    config["telemetry"] = {}
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(config))
    args = [a.replace(container["args"][1], str(tmp_path / "gateway.yaml")) for a in container["args"]]
    listen, emulator_listen = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "SMARTPUSH_GATEWAY_LISTEN": listen,
        "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": f"http://{emulator_listen}",
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": "demo-client",
    }
    emulator = subprocess.Popen(
        [str(BIN / "smartpush-gateway"), "emulator", "--listen", emulator_listen], stdout=subprocess.PIPE
    )
    gateway: subprocess.Popen[str] | None = None
    try:
        assert emulator.stdout is not None
        # SmartPush first: the gateway asks for its token at start; readiness re-checks every 10 s.
        assert b"emulator on" in emulator.stdout.readline()
        gateway = subprocess.Popen(
            [str(BIN / entrypoint[0]), *entrypoint[1:], *args], env=env, stdout=subprocess.PIPE, text=True
        )
        assert gateway.stdout is not None
        assert "listening on" in gateway.stdout.readline()
        health = [str(BIN / healthcheck[0]), *[a.replace("127.0.0.1:50051", listen) for a in healthcheck[1:]]]
        # SERVING means ready: the token for the default profile came from the mounted secret file.
        assert subprocess.run(health, capture_output=True, timeout=30).returncode == 0
        send = [str(BIN / "smartpush-gateway"), "send", "--target", listen, "--project", "p", "--sub", "u",
                "--template", DEMO_TEMPLATE_ID, "--surface", "COMPANION"]  # fmt: skip
        refused = subprocess.run(send, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1
        assert "ERROR_REASON_CALLER_UNAUTHENTICATED" in refused.stdout
        sent = subprocess.run(
            [*send, "--token-file", str(tmp_path / "token")], capture_output=True, text=True, timeout=30
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
    finally:
        for proc in (gateway, emulator):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                proc.wait()


def test_the_overlay_shares_state_through_redis_and_the_base_stays_on_sqlite(
    rendered: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    deployment = kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Several replicas, counted by the HPA alone (a fixed `replicas` would reset it on each apply).
    hpa = kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] > 1
    assert "replicas" not in deployment["spec"]
    assert env["SMARTPUSH_GATEWAY_STATE__BACKEND"] == "redis"
    url = env["SMARTPUSH_GATEWAY_STATE__REDIS_URL"]
    service = kind(docs, "Service", "smartpush-redis")
    assert url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    # The password is a file from a mounted Secret, never a value in the manifest.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    password_file = Path(env["SMARTPUSH_GATEWAY_STATE__REDIS_PASSWORD_FILE"])
    assert str(password_file.parent) == mounts["redis"]
    assert volumes["redis"]["secret"]["secretName"] == "smartpush-redis"

    redis = kind(docs, "StatefulSet", "smartpush-redis")
    (command,) = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    args = command.split()
    assert args[args.index("--appendonly") + 1] == "yes"  # consent survives a Redis restart
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"  # never drops a record silently
    assert "env" not in redis["spec"]["template"]["spec"]["containers"][0]  # its password is a file too
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    gateway_labels = deployment["spec"]["template"]["metadata"]["labels"]

    # Egress: the gateway reaches Redis's pods on its port; Redis admits only the gateway's pods.
    egress = kind(docs, "NetworkPolicy", "smartpush-gateway-egress")
    assert egress["spec"]["policyTypes"] == ["Egress"]
    assert _selects(egress["spec"]["podSelector"], gateway_labels)
    to_redis = [
        r
        for r in egress["spec"]["egress"]
        if any(_selects(t.get("podSelector"), redis_labels) for t in r.get("to", []))
    ]
    assert [p["port"] for r in to_redis for p in r["ports"]] == [6379]
    assert {p["port"] for r in egress["spec"]["egress"] for p in r["ports"]} >= {53, 6379, 4317, 9443}
    inbound = kind(docs, "NetworkPolicy", "smartpush-redis")
    assert _selects(inbound["spec"]["podSelector"], redis_labels)
    (rule,) = inbound["spec"]["ingress"]
    assert [_selects(f["podSelector"], gateway_labels) for f in rule["from"]] == [True]

    # The base alone: one replica on SQLite, its file on the pod's writable volume.
    base = [d for d in yaml.safe_load_all(render(ROOT / "deploy" / "k8s" / "base")) if d]
    assert kind(base, "Deployment")["spec"]["replicas"] == 1
    assert _config(base)["state"]["backend"] == "sqlite"
    assert not [d for d in base if d["kind"] in ("HorizontalPodAutoscaler", "StatefulSet")]


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_docker_compose_settings_are_settings_and_replicas_share_redis() -> None:
    from gateway.config import _is_setting

    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    gateways = {name: svc for name, svc in compose["services"].items() if name.startswith("gateway")}
    assert len(gateways) >= 2
    for name, service in gateways.items():
        env = service["environment"]
        for variable in env:
            if variable.startswith("SMARTPUSH_GATEWAY_"):
                assert _is_setting(variable), (name, variable)
        assert env["SMARTPUSH_GATEWAY_STATE__BACKEND"] == "redis"
        assert env["SMARTPUSH_GATEWAY_STATE__REDIS_URL"].startswith("redis://redis:")
        assert env["SMARTPUSH_GATEWAY_AUTH__MODE"] == "none"  # said, since auth.mode is required
        assert "redis" in service["depends_on"]
