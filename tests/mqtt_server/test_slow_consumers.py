"""Subscribers that never read cannot make `lantern serve` hold unbounded memory, and do not
slow down a subscriber that reads (attack matrix: one such subscriber held ~100 MB)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.packets import (
    Connack,
    Connect,
    Puback,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
)
from support.mqtt_server import Client, MQTTTestPKI, RawTLS, ServerThread
from support.net import free_port
from support.process import LanternProcess

MESSAGES = 800
PAYLOAD = 100_000
NON_READERS = 10
AHEAD = 20
# Defaults: max_session_bytes 16 MiB (messages each non-reader pins, shared between them),
# write_buffer_limit 1 MiB (encoded bytes per connection). Expected growth: ~16 MiB of messages
# (twice: payload and the publisher's packet) + 10 x ~1.1 MiB of buffers + allocator slack.
# Without the limits: 10 x 100 in-flight copies of 100 KB + every message kept (> 200 MB).
RSS_GROWTH_BOUND = 96 << 20


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def non_reader(port: int, name: str) -> socket.socket:
    """A raw MQTT 5 client that subscribes at QoS 1 to ``big`` and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel absorbs little
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    decoder = Decoder(1 << 20, protocol_level=5, expect_connect=False)
    sock.sendall(encode(Connect(name, 5, keep_alive=0), 5))
    sock.sendall(encode(Subscribe(1, (SubscriptionRequest("big", 1),)), 5))
    got = None
    while not isinstance(got, Suback):
        got = decoder.next_packet()
        if got is None:
            decoder.feed(sock.recv(4096))
    return sock


def test_non_reading_subscribers_hold_bounded_memory(data_dir: Path) -> None:
    tcp_port = free_port()
    env = {
        "LANTERN_MQTT__TCP_PORT": str(tcp_port),
        "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
        "LANTERN_PROVISIONING__KEY_POOL_SIZE": "0",
    }
    with LanternProcess(data_dir, env=env) as proc:
        assert proc.proc is not None
        pid = proc.proc.pid
        reader = Client(tcp_port, None, "reader", 5)
        reader.connect()
        reader.subscribe("big", 1)
        publisher = Client(tcp_port, None, "publisher", 5)
        publisher.connect()
        publisher.publish("big", b"warm-up", qos=1)
        assert reader.expect().payload == b"warm-up"
        stalled = [non_reader(tcp_port, f"stalled-{i}") for i in range(NON_READERS)]
        baseline = status_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
        started = time.monotonic()
        payload = bytes(PAYLOAD)
        received: list[bytes] = []
        for i in range(MESSAGES):
            # The publisher stays at most AHEAD messages ahead of the reader: a subscriber
            # that keeps up (one lagging by more than max_session_bytes loses the newest).
            while len(received) < i - AHEAD:
                received.append(reader.expect(timeout=10).payload[:4])
            publisher.publish("big", i.to_bytes(4, "big") + payload, qos=1, wait=False)
        while len(received) < MESSAGES:
            received.append(reader.expect(timeout=10).payload[:4])
        elapsed = time.monotonic() - started
        peak = status_kib(pid, "VmHWM")
        growth = (peak - baseline) * 1024
        print(f"{MESSAGES} x {PAYLOAD} B in {elapsed:.1f} s; RSS +{growth >> 20} MiB at peak")
        # The reader got every message, in order, while the others stalled.
        assert received == [i.to_bytes(4, "big") for i in range(MESSAGES)]
        assert growth < RSS_GROWTH_BOUND, f"server RSS grew by {growth >> 20} MiB"
        for sock in stalled:
            sock.close()
        reader.stop()
        publisher.stop()


def test_a_stalled_subscriber_that_reads_again_gets_every_message_in_order(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    """Its QoS 1 messages waited as decisions (not bytes) while it did not read."""
    server = make_server()
    files = pki.client("stalled")
    ctx = ssl.create_default_context(cafile=str(files.ca))
    ctx.load_cert_chain(str(files.cert), str(files.key))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    raw = RawTLS(ctx.wrap_socket(sock, server_hostname="127.0.0.1"))
    assert isinstance(raw.connect("stalled"), Connack)
    raw.send_packet(Subscribe(1, (SubscriptionRequest("big", 1),)))
    assert isinstance(raw.read_packet(), Suback)
    publisher = Client(server.port, pki.client("pub"), "pub", 5)
    publisher.connect()
    count = 100  # 10 MB: more than the kernel (up to 4 MB) and the write buffer limit take
    for i in range(count):
        publisher.publish("big", i.to_bytes(4, "big") + bytes(100_000), qos=1)

    def deferred() -> int:
        return sum(len(h._deferred or ()) for h in server.server.handlers)

    assert server.call(deferred) > 0  # the stalled connection's messages wait unencoded
    got = []
    while len(got) < count:
        packet = raw.read_packet()
        assert isinstance(packet, Publish), packet
        got.append(packet.payload[:4])
        assert packet.packet_id is not None
        raw.send_packet(Puback(packet.packet_id))
    assert got == [i.to_bytes(4, "big") for i in range(count)]
    assert server.call(deferred) == 0
    assert server.server.broker.sessions["stalled"].held_bytes == 0
    publisher.stop()
    raw.close()
