"""Bad server configuration fails loudly, naming what is wrong."""

from __future__ import annotations

import pytest

from lantern.errors import ConfigError
from lantern.mqtt.server import MQTTServerConfig
from lantern.settings import load_settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tls_port": 8883}, "cert_file, key_file and ca_file"),
        ({"tls_port": None, "max_packet_size": 0}, "max_packet_size"),
        ({"tls_port": None, "receive_maximum": 70000}, "receive_maximum"),
        ({"tls_port": None, "topic_alias_maximum": -1}, "topic_alias_maximum"),
        ({"tls_port": None, "keepalive_max": 0}, "keepalive_max"),
    ],
)
def test_invalid_server_config(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MQTTServerConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_mqtt_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANTERN_MQTT__MAX_PACKET_SIZE", "10")
    with pytest.raises(ConfigError, match="max_packet_size"):
        load_settings()
