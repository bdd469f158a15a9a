"""Settings: defaults, TOML, environment, and loud failures on unknown or invalid keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lantern.errors import ConfigError
from lantern.settings import load_settings


def test_defaults_use_sqlite_in_the_data_dir() -> None:
    settings = load_settings(environ={})
    assert settings.data_dir == Path("lantern-data")
    assert settings.mqtt.port == 8883
    assert settings.mqtt.tcp_port is None and settings.mqtt.ws_port is None
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("lantern-data/lantern.db")


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "lantern.toml"
    cfg.write_text('data_dir = "/srv/x"\n[mqtt]\nport = 1000\ntcp_port = 1883\n')
    settings = load_settings(cfg, environ={"LANTERN_MQTT__PORT": "2000"})
    assert settings.data_dir == Path("/srv/x")
    assert settings.mqtt.port == 2000  # the environment beats the file
    assert settings.mqtt.tcp_port == 1883
    settings = load_settings(cfg, environ={}, data_dir=Path("/other"))
    assert settings.data_dir == Path("/other")  # a CLI flag beats both


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[http]\nport = 9999\n")
    assert load_settings(environ={"LANTERN_CONFIG": str(cfg)}).http.port == 9999


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"LANTERN_MQTT__PROT": "1"}, "mqtt.prot"),
        ({"LANTERN_DATADIR": "x"}, "datadir"),
        ({"LANTERN_MQTT__PORT": "not-a-port"}, "mqtt.port"),
        ({"LANTERN_MQTT__PORT": "70000"}, "mqtt.port"),
        ({"LANTERN_LOG_LEVEL": "loud"}, "log_level"),
        ({"LANTERN_MQTT__MAX_SESSION_BYTES": "100000"}, "mqtt.max_session_bytes"),
        ({"LANTERN_MQTT__MAX_QUEUED_BYTES_TOTAL": "0"}, "mqtt.max_queued_bytes_total"),
        ({"LANTERN_MQTT__MAX_RETAINED_BYTES": "-1"}, "mqtt.max_retained_bytes"),
        ({"LANTERN_PROVISIONING__AUTH_FAILURE_WINDOW_SECONDS": "0"}, "auth_failure_window"),
        ({"LANTERN_PROVISIONING__AUTH_MAX_FAILURES_PER_ADDRESS": "-1"}, "failures_per_address"),
        ({"LANTERN_PROVISIONING__AUTH_MAX_FAILURES_PER_USER": "x"}, "failures_per_user"),
        ({"LANTERN_PROVISIONING__AUTH_THROTTLE_MAX_ENTRIES": "0"}, "throttle_max_entries"),
        ({"LANTERN_PROVISIONING__PASSWORD_CHECK_THREADS": "0"}, "password_check_threads"),
        ({"LANTERN_PROVISIONING__PASSWORD_CHECK_QUEUE": "0"}, "password_check_queue"),
    ],
)
def test_bad_environment_names_the_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(environ=environ)


def test_unknown_toml_key_names_the_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mqtt]\nportt = 1\n")
    with pytest.raises(ConfigError, match=r"mqtt\.portt: unknown setting"):
        load_settings(cfg, environ={})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_lists_and_tables_from_the_environment_decode_as_json() -> None:
    settings = load_settings(environ={"LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp", "ws"]'})
    assert settings.provisioning.anonymous_listeners == ["tcp", "ws"]


def test_command_line_overrides_are_validated_and_named(tmp_path: Path) -> None:
    assert load_settings(environ={}, http={"port": 8081}).http.port == 8081
    with pytest.raises(ConfigError, match=r"http\.port: .*70000.*command line"):
        load_settings(environ={}, http={"port": 70000})
    with pytest.raises(ConfigError, match=r"mqtt\.port: .*environment variable LANTERN_MQTT__PORT"):
        load_settings(environ={"LANTERN_MQTT__PORT": "-1"})
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mqtt]\nport = 99999\n")
    with pytest.raises(ConfigError, match=rf"mqtt\.port: .*{cfg.name}"):
        load_settings(cfg, environ={})


def test_a_given_environment_is_used_alone_and_the_process_one_is_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANTERN_HTTP__PORT", "1234")
    before = dict(os.environ)
    assert load_settings(environ={}).http.port == 8080  # the process environment is not read
    assert load_settings().http.port == 1234  # ... unless no environment is given
    assert dict(os.environ) == before


@pytest.mark.parametrize("flag", ["--http-port", "--mqtt-port"])
def test_serve_port_flags_are_validated_before_anything_starts(tmp_path: Path, flag: str) -> None:
    from typer.testing import CliRunner

    from lantern.cli.main import app

    data = tmp_path / "data"
    done = CliRunner().invoke(app, ["serve", "--data-dir", str(data), flag, "70000"])
    assert done.exit_code == 1
    setting = "http.port" if flag == "--http-port" else "mqtt.port"
    assert f"{setting}: Input should be less than or equal to 65535" in done.output
    assert "command line" in done.output
    assert not data.exists()
