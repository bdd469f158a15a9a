"""Benchmark: durable FHIR observations per second, and publish->PUBACK latency at half load.

Not a test. Two modes (``--mode both`` runs them one after the other):

* ``inprocess`` — the FHIRIngest handler and group commit without sockets: N simulated devices
  each keep ``--inflight`` requests outstanding; a request "is acknowledged" when the handler
  returns, which is exactly when the MQTT server sends the PUBACK (after the durable commit to
  SQLite with synchronous=FULL). This is the ceiling of the ingest service itself.
* ``mqtt`` — a real ``lantern serve`` (started by this script on free loopback ports, fresh data
  directory). N devices (certificates issued by the server's CA and registered as ACTIVE device
  certificates of N things in its registry, exactly what provisioning leaves behind) connect
  over mTLS and publish QoS 1 observations to ``$aws/rules/FHIRIngest`` from raw asyncio
  connections with hand-encoded MQTT 3.1.1 packets (a light load generator, so the server, not
  the client library, is measured). At the end, stored rows are counted against PUBACKs.

Each mode first saturates (closed loop) to find the maximum rate, then offers half of it (open
loop, paced) and reports p50/p99 publish->ack latency. It also prints the CPU time spent per
observation (process CPU / observations): on this shared 2-core machine the wall-clock rate moves
with other load, CPU per observation much less.

    .venv/bin/python bench/ingest.py --mode both

With ``--database-url postgresql+asyncpg://…`` every mode runs twice, on SQLite and then on a
fresh database created on that PostgreSQL server (dropped afterwards), and prints both figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from sqlalchemy.engine import make_url

from lantern.gateway.identity import ThingIdentity
from lantern.gateway.router import DeviceRequest
from lantern.ingest.observations import ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.mqtt.reason_codes import ReasonCode
from lantern.pki import CertificateAuthority, KeyType
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.ingest import count_observations, open_observation_sink

TOPIC = "$aws/rules/FHIRIngest"
PAYLOAD = json.dumps(
    {
        "value": "100",
        "unit": "%",
        "coding": [
            {
                "code": "9750d5e5-d766-4793-a97d-16179578cc4d",
                "system": "http://lifeomic.com/fhir/devices",
                "display": "Battery Percentage",
            }
        ],
        "patientId": "patient-1",
    }
).encode()
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ms = sorted(x * 1000 for x in latencies)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.99) - 1)]


# ------------------------------------------------------------------------------------------------
# In process
# ------------------------------------------------------------------------------------------------


def req(i: int) -> DeviceRequest:
    ident = ThingIdentity(certificate_id="c" * 64, thing_name=f"bench-{i}", project="default")
    return DeviceRequest(TOPIC, PAYLOAD, ident, f"bench-{i}", 1, {})


async def saturate(service: ObservationService, devices: int, inflight: int, seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def device(i: int) -> None:
        nonlocal done
        r = req(i)
        while time.perf_counter() < deadline:
            result = await service.handle(r)
            assert result.puback == ReasonCode.SUCCESS
            done += 1

    await asyncio.gather(*(device(i) for i in range(devices) for _ in range(inflight)))
    return done


async def paced(
    service: ObservationService, devices: int, rate: float, seconds: float
) -> list[float]:
    latencies: list[float] = []
    per_device = rate / devices
    end = time.perf_counter() + seconds
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        result = await service.handle(req(i))
        assert result.puback == ReasonCode.SUCCESS
        latencies.append(time.perf_counter() - t0)

    async def device(i: int) -> None:
        next_at = time.perf_counter() + i / rate
        while next_at < end:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = asyncio.create_task(one(i))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            next_at += 1 / per_device

    await asyncio.gather(*(device(i) for i in range(devices)))
    if tasks:
        await asyncio.gather(*tasks)
    return latencies


@contextlib.asynccontextmanager
async def database_urls(
    args: argparse.Namespace, work: Path
) -> AsyncIterator[list[tuple[str, str]]]:
    """(label, URL) of the databases to measure: a SQLite file in ``work``, and with
    ``--database-url`` a fresh database on that PostgreSQL server (dropped at the end)."""
    urls = (
        []
        if args.only == "postgresql"
        else [("sqlite", f"sqlite+aiosqlite:///{work / 'bench.db'}")]
    )
    if not args.database_url or args.only == "sqlite":
        yield urls
        return
    import asyncpg

    base = make_url(args.database_url)
    admin_dsn = base.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    admin = await asyncpg.connect(admin_dsn)
    name = f"lantern_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        yield [*urls, ("postgresql", url)]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run_inprocess(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with database_urls(args, Path(tmp)) as urls:
            for label, url in urls:
                await _run_inprocess(args, f"in-process {label}", url)


async def _run_inprocess(args: argparse.Namespace, label: str, url: str) -> None:
    db = await Database.open(url)
    writer = GroupCommitWriter(open_observation_sink(db), batch_max=args.batch_max)
    await writer.start()
    service = ObservationService(writer, max_payload_bytes=16384)
    await saturate(service, args.devices, args.inflight, 1.0)  # warm-up
    before, batches_before = writer.committed, writer.batches
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    n = await saturate(service, args.devices, args.inflight, args.seconds)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    rate = n / elapsed
    batches = writer.batches - batches_before
    print(
        f"[{label}] saturation: {rate:,.0f} durable observations/s "
        f"({args.devices} devices x {args.inflight} in flight, {elapsed:.1f}s, "
        f"avg batch {(writer.committed - before) / max(1, batches):.0f}; "
        f"CPU {cpu / n * 1e6:.0f} us/observation, all threads)"
    )
    lat = await paced(service, args.devices, rate / 2, args.seconds)
    p50, p99 = percentiles(lat)
    print(
        f"[{label}] half load ({rate / 2:,.0f}/s offered, {len(lat):,} sent): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms publish->ack"
    )
    await writer.stop()
    async with db.connect() as conn:
        total = await count_observations(conn)
    print(f"[{label}] stored rows: {total:,} (every acknowledged observation)")
    await db.close()


# ------------------------------------------------------------------------------------------------
# Over MQTT, against `lantern serve`
# ------------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id: str) -> bytes:
    body = _str("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _str(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_prefix(topic: str, payload_len: int) -> bytes:
    """PUBLISH QoS 1 up to the packet id (2 bytes), after which the payload follows."""
    t = _str(topic)
    return b"\x32" + _varint(len(t) + 2 + payload_len) + t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of its live children (the ingest writer process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(cpu_seconds(int(child)) for child in children)


@dataclass
class Server:
    data_dir: Path
    database_url: str
    proc: subprocess.Popen[bytes]
    http_port: int
    mqtt_port: int
    log: Path

    @classmethod
    def start(
        cls, work: Path, sqlite_writer: str | None = None, database_url: str | None = None
    ) -> Server:
        data_dir, http_port, mqtt_port = work / "data", free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
        env.update(
            LANTERN_DATA_DIR=str(data_dir),
            LANTERN_HTTP__PORT=str(http_port),
            LANTERN_MQTT__PORT=str(mqtt_port),
        )
        if sqlite_writer:
            env["LANTERN_INGEST__SQLITE_WRITER"] = sqlite_writer
        if database_url:
            env["LANTERN_DATABASE_URL"] = database_url
        log = work / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lantern", "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = database_url or f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}"
        server = cls(data_dir, url, proc, http_port, mqtt_port, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"lantern serve exited:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=0.5).is_success:
                    with socket.create_connection(("127.0.0.1", mqtt_port), timeout=1):
                        return server
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        proc.kill()
        raise SystemExit("lantern serve did not become healthy")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def register_devices(server: Server, n: int, out: Path) -> list[tuple[str, Path, Path]]:
    """Issue N device certificates with the server's CA and register them as provisioning
    would: thing + ACTIVE device certificate attached to it."""
    ca, _ = CertificateAuthority.load_or_create(server.data_dir / "ca")
    db = await Database.open(server.database_url)
    devices = []
    now = time.time()
    async with db.transaction() as conn:
        for i in range(n):
            name = f"bench-{i:04d}-{os.urandom(3).hex()}"
            issued = ca.issue(name, KeyType.EC_P256)
            assert issued.private_key_pem is not None
            cert, key = out / f"{name}.pem", out / f"{name}.key"
            cert.write_text(issued.certificate_pem)
            key.write_text(issued.private_key_pem)
            await reg.insert_thing(
                conn,
                reg.ThingRecord(name, "default", {}, None, str(i), "bench", "b", name, now, now),
            )
            await reg.insert_certificate(
                conn,
                reg.CertificateRecord(
                    issued.certificate_id,
                    issued.certificate_pem,
                    "device",
                    "ACTIVE",
                    "default",
                    name,
                    now,
                    now,
                ),
            )
            devices.append((name, cert, key))
    await db.close()
    return devices


@dataclass
class BenchDevice(asyncio.Protocol):
    """One device connection: sends PUBLISH QoS 1, matches PUBACKs to send times."""

    name: str
    on_ack: Callable[[float], None]
    transport: asyncio.Transport | None = None
    buf: bytearray = field(default_factory=bytearray)
    sent: dict[int, float] = field(default_factory=dict)
    next_id: int = 1
    connack: asyncio.Future[None] | None = None
    slot: asyncio.Future[None] | None = None
    acked: int = 0
    prefix: bytes = field(default_factory=lambda: publish_prefix(TOPIC, len(PAYLOAD)))

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
            first, rl = buf[pos], buf[pos + 1]  # every packet the server sends here is short
            if len(buf) - pos < 2 + rl:
                break
            if first == 0x20:
                assert self.connack is not None
                if buf[pos + 3] != 0:
                    self.connack.set_exception(RuntimeError(f"CONNACK {buf[pos + 3]}"))
                else:
                    self.connack.set_result(None)
            elif first == 0x40:
                pid = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                t0 = self.sent.pop(pid, None)
                if t0 is not None:
                    self.acked += 1
                    self.on_ack(now - t0)
                if self.slot is not None and not self.slot.done():
                    self.slot.set_result(None)
            pos += 2 + rl
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connack is not None and not self.connack.done():
            self.connack.set_exception(ConnectionError("connection lost"))

    def publish(self) -> None:
        pid = self.next_id
        self.next_id = pid % 65535 + 1
        self.sent[pid] = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.prefix + pid.to_bytes(2, "big") + PAYLOAD)

    async def wait_slot(self, window: int) -> None:
        while len(self.sent) >= window:
            self.slot = asyncio.get_running_loop().create_future()
            await self.slot


class LoadDevice(Protocol):
    """A benchmark device over MQTT: requests in flight in ``sent``, waiting for room."""

    @property
    def sent(self) -> Mapping[Any, float]: ...

    async def wait_slot(self, window: int) -> None: ...


D = TypeVar("D", bound=LoadDevice)


async def closed_loop(
    devices: Sequence[D], window: int, seconds: float, send: Callable[[D], None]
) -> None:
    """Every device keeps ``window`` requests in flight for ``seconds``."""
    deadline = time.perf_counter() + seconds

    async def drive(d: D) -> None:
        while time.perf_counter() < deadline:
            await d.wait_slot(window)
            send(d)

    await asyncio.gather(*(drive(d) for d in devices))


async def drain(devices: Sequence[LoadDevice], timeout: float = 30.0) -> None:
    """Wait until no device has a request in flight (at most ``timeout`` seconds)."""
    deadline = time.perf_counter() + timeout
    while any(d.sent for d in devices) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)


async def paced_load(
    devices: Sequence[D], rate: float, seconds: float, send: Callable[[D], None]
) -> None:
    """Offer ``rate`` requests/s in total for ``seconds``, spread evenly over ``devices``."""
    per_device = rate / len(devices)
    end = time.perf_counter() + seconds

    async def paced_device(i: int, d: D) -> None:
        next_at = time.perf_counter() + i / rate
        while next_at < end:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            send(d)
            next_at += 1 / per_device

    await asyncio.gather(*(paced_device(i, d) for i, d in enumerate(devices)))


async def run_mqtt(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with database_urls(args, Path(tmp)) as urls:
            for label, url in urls:
                work = Path(tmp) / label
                work.mkdir()
                server = Server.start(work, args.sqlite_writer, None if label == "sqlite" else url)
                try:
                    await _run_mqtt(args, f"mqtt {label}", server, work)
                finally:
                    server.stop()


async def _run_mqtt(args: argparse.Namespace, label: str, server: Server, work: Path) -> None:
    certs = work / "certs"
    certs.mkdir()
    registered = await register_devices(server, args.mqtt_devices, certs)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    record = [False]

    def on_ack(latency: float) -> None:
        if record[0]:
            latencies.append(latency)

    devices: list[BenchDevice] = []
    for name, cert, key in registered:
        ctx = ssl.create_default_context(cafile=str(server.data_dir / "ca" / "ca.pem"))
        ctx.load_cert_chain(str(cert), str(key))
        dev = BenchDevice(name, on_ack)
        dev.connack = loop.create_future()
        await loop.create_connection(
            lambda d=dev: d, "127.0.0.1", server.mqtt_port, ssl=ctx, server_hostname="localhost"
        )
        await asyncio.wait_for(dev.connack, 10)
        devices.append(dev)

    await closed_loop(devices, args.mqtt_inflight, 1.0, BenchDevice.publish)  # warm-up
    await drain(devices)
    acked_before = sum(d.acked for d in devices)
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.perf_counter()
    await closed_loop(devices, args.mqtt_inflight, args.seconds, BenchDevice.publish)
    await drain(devices)
    elapsed = time.perf_counter() - t0
    n = sum(d.acked for d in devices) - acked_before
    cpu = cpu_seconds(server.proc.pid) - cpu0
    rate = n / elapsed
    print(
        f"[{label}] saturation: {rate:,.0f} durable observations/s acknowledged "
        f"({len(devices)} devices x {args.mqtt_inflight} in flight, {elapsed:.1f}s; "
        f"server CPU {cpu / max(1, n) * 1e6:.0f} us/observation)"
    )
    half = args.half_rate or rate / 2
    record[0] = True
    await paced_load(devices, half, args.seconds, BenchDevice.publish)
    await drain(devices)
    record[0] = False
    p50, p99 = percentiles(latencies)
    print(
        f"[{label}] half load ({half:,.0f}/s offered, {len(latencies):,} acknowledged): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms publish->PUBACK"
    )
    total_acked = sum(d.acked for d in devices)
    for d in devices:
        assert d.transport is not None
        d.transport.close()
    db = await Database.open(server.database_url, migrate=False)
    async with db.connect() as conn:
        stored = await count_observations(conn)
    await db.close()
    print(f"[{label}] PUBACKs {total_acked:,}, stored rows {stored:,} (stored >= acknowledged)")
    assert stored >= total_acked


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--mode", choices=["inprocess", "mqtt", "both"], default="both")
    ap.add_argument("--devices", type=int, default=50, help="in-process devices")
    ap.add_argument("--inflight", type=int, default=10, help="in-process requests per device")
    ap.add_argument("--mqtt-devices", type=int, default=200)
    ap.add_argument(
        "--mqtt-inflight", type=int, default=10, help="QoS 1 publishes in flight per device"
    )
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument(
        "--half-rate",
        type=float,
        default=None,
        help="mqtt: offer this rate (obs/s) in the latency phase instead of half the measured "
        "saturation rate, to compare runs at the same load",
    )
    ap.add_argument("--batch-max", type=int, default=2048)
    ap.add_argument(
        "--sqlite-writer",
        choices=["process", "thread"],
        default=None,
        help="mqtt: the server's ingest.sqlite_writer (default: the server's default)",
    )
    ap.add_argument(
        "--database-url",
        default=None,
        help="also measure on a fresh database on this PostgreSQL server "
        "(postgresql+asyncpg://user@host/any), beside SQLite",
    )
    ap.add_argument(
        "--only",
        choices=["sqlite", "postgresql"],
        default=None,
        help="with --database-url: measure only this database",
    )
    args = ap.parse_args()
    if args.mode in ("inprocess", "both"):
        asyncio.run(run_inprocess(args))
    if args.mode in ("mqtt", "both"):
        asyncio.run(run_mqtt(args))


if __name__ == "__main__":
    main()
