"""Settings: YAML file under environment variables; secrets from env or files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings


def test_yaml_then_env_precedence_and_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listen: 0.0.0.0:6000\n"
        "smartpush:\n  base_url: https://salute.online.sberbank.ru:9443\n  wire:\n    wrap_request_payload: false\n"
        f"profiles:\n  default:\n    client_id: yaml-id\n    secret_file: {secret}\n"
        "auth:\n  mode: none\n"
    )
    monkeypatch.setenv("SMARTPUSH_GATEWAY_LISTEN", "127.0.0.1:7000")
    monkeypatch.setenv("SMARTPUSH_GATEWAY_PROFILES__OTHER__CLIENT_ID", "env-id")
    monkeypatch.setenv("SMARTPUSH_GATEWAY_PROFILES__OTHER__SECRET", "from-env")
    settings = load_settings(config)
    assert settings.listen == "127.0.0.1:7000"
    assert settings.smartpush.send_url() == "https://salute.online.sberbank.ru:9443/api/v2/smartpush/apprequest"
    assert settings.smartpush.resolved_token_url() == "https://salute.online.sberbank.ru:9443/api/v2/oauth"
    assert settings.smartpush.wire.wrap_request_payload is False
    assert settings.profiles["default"].resolve_secret() == "from-file"
    assert settings.profiles["other"].resolve_secret() == "from-env"
    assert "from-env" not in repr(settings)


def test_defaults_point_at_the_current_documented_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMARTPUSH_GATEWAY_CONFIG", raising=False)
    settings = load_settings(auth={"mode": "none"})
    assert settings.smartpush.send_url() == "https://ngw.devices.sberbank.ru:9443/api/v2/smartpush/apprequest"
    assert settings.smartpush.resolved_token_url() == "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
    assert settings.allow_inline_credentials is False


def test_profile_without_a_secret_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("profiles:\n  default:\n    client_id: x\n")
    with pytest.raises(ConfigError, match="secret") as caught:
        load_settings(config)
    assert caught.value.setting == "profiles.default"
