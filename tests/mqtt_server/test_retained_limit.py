"""Retained messages are bounded in bytes, not only in count (a client could otherwise keep
100,000 x 128 KB in the server's memory)."""

from __future__ import annotations

from collections.abc import Callable

from support.mqtt_server import Client, MQTTTestPKI, ServerThread


def test_retained_messages_over_max_retained_bytes_are_refused(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    """A client cannot fill the server's memory with retained messages (bounded in bytes,
    not only in count)."""
    server = make_server(max_retained_bytes=1 << 20)
    client = Client(server.port, pki.client("retainer"), "retainer", 5)
    client.connect()
    for i in range(40):  # 4 MB offered
        client.publish(f"r/{i}", bytes(100_000), qos=1, retain=True)
    retained = server.server.broker.retained
    assert server.call(lambda: retained.bytes) <= 1 << 20
    assert server.call(lambda: retained.refused) == 40 - 10
    reader = Client(server.port, pki.client("reader"), "reader", 5)
    reader.connect()
    reader.subscribe("r/#", 1)
    got = {reader.expect().topic for _ in range(10)}
    assert got == {f"r/{i}" for i in range(10)}
    reader.expect_none()
    reader.stop()
    client.stop()
