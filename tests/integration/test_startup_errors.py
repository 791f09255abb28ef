"""A setting that is wrong, missing or misspelt stops `serve` with one line naming it, exit code 2.

Each case runs the real command line; the output never holds a traceback or a secret.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "smartpush-gateway")
SECRET = "TOP-SECRET-value-42"


def serve(tmp_path: Path, config: str | None, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPUSH_GATEWAY_")}
    clean |= {
        "SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": str(tmp_path / "state.sqlite3"),
        "SMARTPUSH_GATEWAY_AUTH__MODE": "none",
        **(env or {}),
    }
    clean = {k: v for k, v in clean.items() if v != "(unset)"}
    cmd = [CLI, "serve", "--listen", "127.0.0.1:0", *args]
    if config is not None:
        path = tmp_path / "gateway.yaml"
        path.write_text(config)
        cmd += ["--config", str(path)]
    done = subprocess.run(cmd, env=clean, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def one_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "Traceback" not in out
    assert SECRET not in out
    return lines[0]


PROFILE = f"profiles:\n  default:\n    client_id: id\n    secret: {SECRET}\n"


@pytest.mark.parametrize(
    ("config", "env", "setting"),
    [
        # A misspelt key inside a section once sent to the production host; now it stops start-up.
        (PROFILE + "smartpush:\n  base_urll: http://127.0.0.1:1\n", {}, "smartpush.base_urll"),
        (f"profiles:\n  default:\n    client_id: id\n    secret: {SECRET}\n    secret_fil: /x\n", {}, "secret_fil"),
        # A profile without client_id, its secret right there: named, never echoed.
        (f"profiles:\n  default:\n    secret: {SECRET}\n", {}, "profiles.default.client_id"),
        ("profiles:\n  default:\n    client_id: id\n    secret_file: /no/such/secret\n", {}, "profiles.default"),
        (PROFILE + "shutdown_grace_s: 2\n", {}, "shutdown_grace_s"),
        (PROFILE + "smartpush:\n  max_attempts: many\n", {}, "smartpush.max_attempts"),
        (
            PROFILE,
            {"SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URLL": "http://127.0.0.1:1"},
            "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URLL",
        ),
        (PROFILE, {"SMARTPUSH_GATEWAY_LISTN": "127.0.0.1:1"}, "SMARTPUSH_GATEWAY_LISTN"),
        (None, {"SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": SECRET}, "profiles.default.client_id"),
        (PROFILE + "tls_cert_file: /no/such/cert.pem\ntls_key_file: /no/such/key.pem\n", {}, "tls_"),
        # Caller identity is never off by omission.
        (PROFILE, {"SMARTPUSH_GATEWAY_AUTH__MODE": "(unset)"}, "auth: Value error, required: `mtls` or `jwt`"),
        (PROFILE + "callers:\n  billing:\n    match: x\n", {}, "set auth.mode to mtls or jwt"),
        (PROFILE, {"SMARTPUSH_GATEWAY_AUTH__MODE": "jwt"}, "mode `jwt` needs the `jwt` section"),
        (PROFILE, {"SMARTPUSH_GATEWAY_AUTH__MODE": "mtls"}, "configure them"),
        # Settings that moved say where they went.
        (PROFILE + "consent_db: /tmp/c.sqlite3\n", {}, "state.sqlite_path"),
        (PROFILE, {"SMARTPUSH_GATEWAY_CONSENT_DB": "/tmp/c.sqlite3"}, "SMARTPUSH_GATEWAY_CONSENT_DB"),
        (PROFILE + "idempotency_max_entries: 5\n", {}, "idempotency_max_entries"),
        (PROFILE + "state:\n  backend: redis\n", {}, "redis_url"),
        (PROFILE + "state:\n  backend: redis\n  redis_url: not-a-url\n", {}, "state.redis_url"),
        (
            PROFILE + f"state:\n  backend: redis\n  redis_url: redis://:{SECRET}@\n  redis_password_file: /no/pw\n",
            {},
            "redis_password_file",
        ),
        (PROFILE, {"SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": "/dev/null/state.sqlite3"}, "state.sqlite_path"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, config: str | None, env: dict[str, str], setting: str
) -> None:
    code, out = serve(tmp_path, config, "--log-format", "text", env=env)
    assert code == 2, out
    line = one_line(out)
    assert line.startswith("smartpush-gateway: configuration error: ")
    assert setting in line


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    code, out = serve(tmp_path, None, "--config", str(tmp_path / "missing.yaml"), "--log-format", "text")
    assert code == 2
    assert "--config" in one_line(out)
    code, out = serve(tmp_path, None, env={"SMARTPUSH_GATEWAY_CONFIG": str(tmp_path / "gone.yaml")})
    assert code == 2
    assert "SMARTPUSH_GATEWAY_CONFIG" in one_line(out)


def test_the_error_is_json_when_logs_are_json(tmp_path: Path) -> None:
    code, out = serve(tmp_path, f"profiles:\n  default:\n    secret: {SECRET}\n", "--log-format", "json")
    assert code == 2
    line = json.loads(one_line(out))
    assert line["level"] == "ERROR"
    assert line["setting"] == "profiles.default.client_id"
    assert line["error"] == "Field required"


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPUSH_GATEWAY_")}
        clean["SMARTPUSH_GATEWAY_STATE__SQLITE_PATH"] = str(tmp_path / "c.sqlite3")
        done = subprocess.run(
            [CLI, "serve", "--emulator", "--listen", f"127.0.0.1:{port}", "--log-format", "text"],
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "listen" in one_line(done.stderr)


def test_version() -> None:
    from gateway import __version__

    done = subprocess.run([CLI, "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"smartpush-gateway {__version__}")
