"""Benchmark: durable shadow updates per second over mTLS MQTT, with the delta delivered to the
device, and update->accepted latency at half load.

Not a test. Starts a real ``lantern serve`` (free loopback ports, fresh data directory, SQLite
with synchronous=FULL), registers N things with device certificates (what provisioning leaves
behind), and connects N devices over mTLS from raw asyncio connections with hand-encoded MQTT
3.1.1 packets (a light load generator: the server, not a client library, is measured). Each
device subscribes to its classic shadow's ``update/delta`` and publishes
``{"state": {"desired": {"v": <n>}}, "clientToken": "<n>"}`` to ``update``: the server commits
the change (group commit), answers ``update/accepted`` to the device, and broadcasts the delta
(received by the device: counted) and the documents message.

First saturation (closed loop, ``--inflight`` requests outstanding per device, below the 10 a
connection may have in flight), then half of that rate offered (open loop, paced) for p50/p99
update->accepted latency. At the end every device's stored version is checked against the
accepted replies it got (durable: stored >= accepted).

    .venv/bin/python bench/shadows.py [--devices 50] [--inflight 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import (
    Server,
    _str,
    _varint,
    closed_loop,
    connect_packet,
    cpu_seconds,
    drain,
    paced_load,
    percentiles,
    register_devices,
)


def subscribe_packet(topic: str) -> bytes:
    body = (1).to_bytes(2, "big") + _str(topic) + b"\x00"
    return b"\x82" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes) -> bytes:
    """PUBLISH QoS 0 (the reply still comes only after the durable commit)."""
    t = _str(topic)
    return b"\x30" + _varint(len(t) + len(payload)) + t + payload


@dataclass
class ShadowDevice(asyncio.Protocol):
    """One device: sends updates, matches ``update/accepted`` replies to send times by token."""

    name: str
    on_accepted: Callable[[float], None]
    transport: asyncio.Transport | None = None
    buf: bytearray = field(default_factory=bytearray)
    sent: dict[str, float] = field(default_factory=dict)
    seq: int = 0
    ready: asyncio.Future[None] | None = None
    slot: asyncio.Future[None] | None = None
    accepted: int = 0
    rejected: int = 0
    deltas: int = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(connect_packet(self.name))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        now = time.perf_counter()
        while len(buf) - pos >= 2:
            length, shift, i = 0, 0, pos + 1
            while True:
                if i >= len(buf):
                    del buf[:pos]
                    return
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            if len(buf) - i < length:
                break
            kind = buf[pos] >> 4
            if kind == 2:  # CONNACK: subscribe to the delta
                assert self.transport is not None
                self.transport.write(
                    subscribe_packet(f"$aws/things/{self.name}/shadow/update/delta")
                )
            elif kind == 9 and self.ready is not None and not self.ready.done():  # SUBACK
                self.ready.set_result(None)
            elif kind == 3:
                self._publish(bytes(buf[i : i + length]), now)
            pos = i + length
        del buf[:pos]

    def _publish(self, packet: bytes, now: float) -> None:
        tlen = int.from_bytes(packet[:2], "big")
        topic = packet[2 : 2 + tlen].decode()
        qos = 0  # replies to QoS 0 requests and QoS 0 subscriptions are QoS 0: no packet id
        body = packet[2 + tlen + (2 if qos else 0) :]
        if topic.endswith("/update/delta"):
            self.deltas += 1
            return
        token = json.loads(body).get("clientToken")
        t0 = self.sent.pop(token, None)
        if topic.endswith("/accepted"):
            self.accepted += 1
            if t0 is not None:
                self.on_accepted(now - t0)
        else:
            self.rejected += 1
        if self.slot is not None and not self.slot.done():
            self.slot.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost"))

    def update(self) -> None:
        self.seq += 1
        token = str(self.seq)
        payload = b'{"state":{"desired":{"v":%d}},"clientToken":"%s"}' % (self.seq, token.encode())
        self.sent[token] = time.perf_counter()
        assert self.transport is not None
        self.transport.write(publish_packet(f"$aws/things/{self.name}/shadow/update", payload))

    async def wait_slot(self, window: int) -> None:
        while len(self.sent) >= window:
            self.slot = asyncio.get_running_loop().create_future()
            await self.slot


async def connect(
    server: Server, registered: list[tuple[str, Path, Path]], on_accepted: Callable[[float], None]
) -> list[ShadowDevice]:
    loop = asyncio.get_running_loop()
    devices = []
    for name, cert, key in registered:
        ctx = ssl.create_default_context(cafile=str(server.data_dir / "ca" / "ca.pem"))
        ctx.load_cert_chain(str(cert), str(key))
        dev = ShadowDevice(name, on_accepted)
        dev.ready = loop.create_future()
        await loop.create_connection(
            lambda d=dev: d, "127.0.0.1", server.mqtt_port, ssl=ctx, server_hostname="localhost"
        )
        await asyncio.wait_for(dev.ready, 10)
        devices.append(dev)
    return devices


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = Server.start(work)
        try:
            await _run(args, server, work)
        finally:
            server.stop()


async def _run(args: argparse.Namespace, server: Server, work: Path) -> None:
    certs = work / "certs"
    certs.mkdir()
    registered = await register_devices(server, args.devices, certs)
    latencies: list[float] = []
    record = [False]

    def on_accepted(latency: float) -> None:
        if record[0]:
            latencies.append(latency)

    devices = await connect(server, registered, on_accepted)

    await closed_loop(devices, args.inflight, 1.0, ShadowDevice.update)  # warm-up
    await drain(devices)
    before = sum(d.accepted for d in devices)
    deltas_before = sum(d.deltas for d in devices)
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.perf_counter()
    await closed_loop(devices, args.inflight, args.seconds, ShadowDevice.update)
    await drain(devices)
    elapsed = time.perf_counter() - t0
    n = sum(d.accepted for d in devices) - before
    deltas = sum(d.deltas for d in devices) - deltas_before
    cpu = cpu_seconds(server.proc.pid) - cpu0
    rate = n / elapsed
    print(
        f"saturation: {rate:,.0f} durable shadow updates/s accepted, {deltas / elapsed:,.0f} "
        f"deltas/s delivered ({len(devices)} devices x {args.inflight} in flight, "
        f"{elapsed:.1f}s; server CPU {cpu / max(1, n) * 1e6:.0f} us/update)"
    )
    half = args.half_rate or rate / 2
    record[0] = True
    await paced_load(devices, half, args.seconds, ShadowDevice.update)
    await drain(devices)
    record[0] = False
    p50, p99 = percentiles(latencies)
    print(
        f"half load ({half:,.0f}/s offered, {len(latencies):,} accepted): p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms update->accepted"
    )
    accepted = {d.name: d.accepted for d in devices}
    rejected = sum(d.rejected for d in devices)
    for d in devices:
        assert d.transport is not None
        d.transport.close()
    conn = sqlite3.connect(f"file:{server.data_dir / 'lantern.db'}?mode=ro", uri=True)
    stored = dict(conn.execute("SELECT thing_name, version FROM shadows WHERE shadow_name = ''"))
    conn.close()
    short = [n for n, count in accepted.items() if stored.get(n, 0) < count]
    print(
        f"accepted {sum(accepted.values()):,}, rejected {rejected:,}, stored versions "
        f"{sum(stored.values()):,} (every device: stored >= accepted: {not short})"
    )
    assert not short


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--inflight", type=int, default=8, help="updates in flight per device (<= 10)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--half-rate", type=float, default=None, help="offer this rate instead")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
