"""Refused TLS handshakes and CONNECTs in the text log and in the MQTT collector, against the
in-process MQTT server with real TLS clients; and the JSON line format."""

from __future__ import annotations

import json
import logging
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lantern.mqtt.hooks import AuthResult, ConnectInfo
from lantern.mqtt.packets import Connack
from lantern.mqtt.reason_codes import ReasonCode
from lantern.runtime.logs import JsonFormatter
from lantern.runtime.metrics import MQTTCollector
from support.mqtt_server import ClientFiles, MQTTTestPKI, RawTLS, ServerThread


class RefuseAll:
    """Refuses every client, saying why (as the gateway does)."""

    async def authenticate(self, info: ConnectInfo) -> AuthResult:
        return AuthResult(
            identity=None,
            reason_code=ReasonCode.NOT_AUTHORIZED,
            reason="certificate abc is not registered",
        )


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., tuple[ServerThread, MQTTTestPKI]]]:
    started: list[ServerThread] = []

    def make(**kwargs: object) -> tuple[ServerThread, MQTTTestPKI]:
        pki = MQTTTestPKI.create(tmp_path / f"pki{len(started)}")
        server = ServerThread(pki, **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server, pki

    yield make
    for server in started:
        server.stop()


def exposition(server: ServerThread) -> str:
    registry = CollectorRegistry()
    registry.register(MQTTCollector(server.server))
    return server.call(lambda: generate_latest(registry).decode())


def test_refused_handshakes_and_connects_are_logged_once_per_reason_within_the_limit(
    make_server: Callable[..., tuple[ServerThread, MQTTTestPKI]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, pki = make_server(authenticator=RefuseAll(), log_refusals_per_minute=2)
    stranger_pki = MQTTTestPKI.create(tmp_path / "stranger")
    stranger = stranger_pki.client("stranger")
    # Trusts the server, presents a certificate from another CA.
    foreign = ClientFiles(stranger.cert, stranger.key, pki.ca.ca_file)
    with caplog.at_level(logging.INFO, "lantern.mqtt.server"):
        for _ in range(3):
            raw = RawTLS.open(server.port, foreign)  # TLS 1.3: refused after the client's Finished
            with pytest.raises((ssl.SSLError, ConnectionError)):
                raw.send(b"\x10\x00")
                assert raw.read_some() == b""
                raise ConnectionError("closed")
            raw.close()
        for _ in range(3):
            raw = RawTLS.open(server.port, pki.client("device"))
            answer = raw.connect("device-1")
            assert isinstance(answer, Connack) and answer.reason_code == 0x87
            raw.close()
        text = exposition(server)
    tls = [r for r in caplog.records if r.getMessage().startswith("refused TLS handshake")]
    assert len(tls) == 2, caplog.text  # the limit, the third suppressed
    assert tls[0].levelno == logging.INFO
    assert "refused TLS handshake on mqtts from 127.0.0.1:" in tls[0].getMessage()
    assert "certificate verify failed" in tls[0].getMessage()
    refused = [r for r in caplog.records if r.getMessage().startswith("refused CONNECT")]
    assert len(refused) == 2, caplog.text
    message = refused[0].getMessage()
    assert message.startswith("refused CONNECT from 127.0.0.1:")
    assert "on mqtts (client 'device-1'): certificate abc is not registered" in message
    assert "(CONNACK NOT_AUTHORIZED)" in message
    assert (
        'lantern_mqtt_tls_handshake_failures_total{listener="mqtts",'
        'reason="certificate_verify_failed"} 3.0' in text
    )
    assert 'lantern_mqtt_connects_refused_total{reason="not_authorized"} 3.0' in text
    assert 'lantern_mqtt_connections_accepted_total{listener="mqtts"} 3.0' in text
    assert 'lantern_mqtt_packets_received_total{type="CONNECT"} 3.0' in text
    assert 'lantern_mqtt_packets_sent_total{type="CONNACK"} 3.0' in text
    assert 'lantern_mqtt_connections{listener="mqtts"} 0.0' in text


def test_json_lines_carry_the_stable_fields_and_the_extras() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "lantern.mqtt.server", logging.INFO, __file__, 1, "refused %s", ("x",), None
    )
    record.peer = "10.0.0.1:4000"
    record.reason = "bad_user_name_or_password"
    line = json.loads(formatter.format(record))
    assert list(line)[:4] == ["ts", "level", "logger", "msg"]
    assert line["level"] == "INFO" and line["logger"] == "lantern.mqtt.server"
    assert line["msg"] == "refused x"
    assert line["peer"] == "10.0.0.1:4000" and line["reason"] == "bad_user_name_or_password"
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "lantern.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = json.loads(formatter.format(failed))
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exc"]
    assert "\n" not in formatter.format(failed)  # one line, even with a traceback
