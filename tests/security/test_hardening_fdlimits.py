"""Splitting the file descriptor limit between listeners (lantern.runtime.fdlimits)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from lantern.errors import ConfigError
from lantern.runtime.fdlimits import Demand, fit_settings, plan_caps
from lantern.settings import load_settings

MQTT = Demand("mqtt.max_connections", ("mqtts",), 100_000, explicit=False)
HTTP = Demand("http.max_connections", ("http",), 10_000, explicit=False, weight=2)


def test_defaults_are_kept_when_they_fit() -> None:
    plan = plan_caps(1_048_576, 20, [MQTT, HTTP])
    assert plan.caps == {"mqtt.max_connections": 100_000, "http.max_connections": 10_000}
    assert plan.describe([MQTT, HTTP]).endswith("mqtts 100000; http 10000")


def test_defaults_share_what_is_left_fairly() -> None:
    plan = plan_caps(20_000, 20, [MQTT, HTTP])
    available = 20_000 - plan.reserved
    mqtt, http = plan.caps["mqtt.max_connections"], plan.caps["http.max_connections"]
    assert mqtt + 2 * http <= available  # no listener can starve another
    assert mqtt == available // 2 and http == available // 4  # equal shares of descriptors
    assert "mqtt.max_connections 100000 lowered to fit" in plan.describe([MQTT, HTTP])


def test_a_small_request_is_granted_and_the_rest_goes_to_the_others() -> None:
    small = Demand("http.max_connections", ("http",), 100, explicit=False, weight=2)
    tcp = Demand("mqtt.max_connections", ("mqtts", "tcp"), 100_000, explicit=False)
    plan = plan_caps(10_000, 20, [tcp, small])
    assert plan.caps["http.max_connections"] == 100
    assert plan.caps["mqtt.max_connections"] == (10_000 - plan.reserved - 200) // 2


def test_explicit_caps_are_kept_and_the_defaults_fit_around_them() -> None:
    mqtt = Demand("mqtt.max_connections", ("mqtts",), 15_000, explicit=True)
    plan = plan_caps(20_000, 20, [mqtt, HTTP])
    assert plan.caps["mqtt.max_connections"] == 15_000
    assert 15_000 + 2 * plan.caps["http.max_connections"] <= 20_000 - plan.reserved


def test_explicit_caps_that_do_not_fit_name_the_settings() -> None:
    mqtt = Demand("mqtt.max_connections", ("mqtts", "ws"), 10_000, explicit=True)
    with pytest.raises(ConfigError, match=r"mqtt.max_connections = 10000 need 20000 file desc"):
        plan_caps(16_384, 20, [mqtt, HTTP])


def test_too_low_a_limit_fails_startup() -> None:
    with pytest.raises(ConfigError, match="at least 16 are needed"):
        plan_caps(128, 20, [MQTT, HTTP])


def test_fit_settings_counts_the_enabled_mqtt_listeners() -> None:
    settings = load_settings(
        environ={"LANTERN_MQTT__WS_PORT": "0", "LANTERN_HTTP__MAX_CONNECTIONS": "500"}
    )
    fitted, line = fit_settings(settings, 20_000, 20)
    assert fitted.http.max_connections == 500
    assert 2 * fitted.mqtt.max_connections + 1000 <= 20_000
    assert "mqtts/ws" in line


def test_lantern_serve_raises_the_soft_limit_to_the_hard_one() -> None:
    code = (
        "import resource; from lantern.runtime.fdlimits import raise_nofile_limit;"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE);"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard));"
        "print([raise_nofile_limit(), resource.getrlimit(resource.RLIMIT_NOFILE), hard])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (old, new), (soft, _), hard = ast.literal_eval(out.stdout)
    assert old == 64 and new == soft == hard


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("LANTERN_HTTP__REQUEST_READ_TIMEOUT", "0", "http.request_read_timeout"),
        ("LANTERN_HTTP__REQUEST_READ_TIMEOUT", "soon", "http.request_read_timeout"),
        ("LANTERN_HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
        ("LANTERN_LOG_SQL_STATEMENTS", "maybe", "log_sql_statements"),
    ],
)
def test_invalid_new_settings_stop_startup_naming_them(
    variable: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(environ={variable: value})
