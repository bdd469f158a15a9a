"""MQTT benchmark: Lantern vs Mosquitto, one after the other, with the same load generator.

Not a test. Run ``python bench/mqtt.py`` (about 4-5 minutes) or ``--quick`` (about 1 minute).

What it measures, for each broker (started by this script on free loopback ports):

- saturation throughput (messages delivered to subscribers per second) for QoS 0 and QoS 1,
  64-byte payloads, point-to-point (10 publisher/subscriber pairs) and 1 -> 1000 fan-out;
- p50/p99 latency (publish -> delivery) at fixed offered loads;
- server CPU seconds per 1k delivered messages (utime+stime of the server process);
- idle memory per mTLS connection (CONNECT sent, CONNACK received, then idle) at 1k and 10k
  connections: (server VmRSS after - before) / N.

The memory phase also runs two bare TLS servers (no MQTT broker, CONNACK to any input) to compare
Lantern's transport (``lantern.mqtt.transport``, ssl.SSLObject over MemoryBIO) with asyncio's own
TLS transport (``loop.create_server(ssl=...)``) in the same conditions.

The load generator is open loop with raw sockets and pre-encoded MQTT 3.1.1 packets in separate
processes (uvloop). Throughput runs use the brokers' plain TCP listeners (the broker, not TLS, is
measured); memory runs use mTLS. Saturation runs bound the messages in flight (sent but not yet
delivered; both brokers queue up to 10000 QoS 1 messages per session) so that neither broker
queues without limit or drops QoS 1 messages; while that window is full the publisher sleeps
1 ms instead of polling (it would otherwise take a core from the broker). Latency runs
send at a fixed rate in 1 ms ticks and record every delivery. On this 2-core machine the
generator and the broker share the CPUs: the generator's CPU use is printed so that a
client-bound figure can be recognised.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = "/usr/sbin/mosquitto"
PAYLOAD_SIZE = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ------------------------------------------------------------------------------------------------
# MQTT 3.1.1 packets (hand-encoded: the few the benchmark needs)
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
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, keepalive: int = 0) -> bytes:
    body = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _str(client_id)
    return b"\x10" + _varint(len(body)) + body


def subscribe_packet(packet_id: int, topic: str, qos: int) -> bytes:
    body = struct.pack("!H", packet_id) + _str(topic) + bytes([qos])
    return b"\x82" + _varint(len(body)) + body


def publish_header(topic: str, qos: int) -> bytes:
    """Fixed header + topic (+ room for the packet id) of a PUBLISH with a 64-byte payload."""
    rest = len(_str(topic)) + (2 if qos else 0) + PAYLOAD_SIZE
    return bytes([0x30 | (qos << 1)]) + _varint(rest) + _str(topic)


CONNACK_LEN = 4
PUBACK = b"\x40\x02"
PAD = b"x" * (PAYLOAD_SIZE - 8)


def _ts_payload(now_ns: int) -> bytes:
    return now_ns.to_bytes(8, "big") + PAD


class PacketSplitter:
    """Splits an MQTT byte stream into (first byte, packet bytes) without decoding bodies."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(buf)
        while pos + 2 <= n:
            mult, rl, i = 1, 0, pos + 1
            while True:
                if i >= n:
                    rl = -1
                    break
                b = buf[i]
                rl += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if rl < 0 or i + rl > n:
                break
            out.append((buf[pos], bytes(buf[pos : i + rl])))
            pos = i + rl
        del buf[:pos]
        return out


# ------------------------------------------------------------------------------------------------
# Processes and /proc
# ------------------------------------------------------------------------------------------------


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------


@dataclass
class Certs:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def issue_client_cert(ca_dir: Path, out_dir: Path) -> Certs:
    from lantern.pki import CertificateAuthority, KeyType

    ca, _ = CertificateAuthority.load_or_create(ca_dir)
    issued = ca.issue("bench-client", KeyType[os.environ.get("BENCH_CLIENT_KEY", "EC_P256")])
    cert, key = out_dir / "bench-client.pem", out_dir / "bench-client.key"
    cert.write_text(issued.certificate_pem)
    key.write_text(issued.private_key_pem)
    key.chmod(0o600)
    return Certs(ca.ca_file, ca.server_cert_file, ca.server_key_file, cert, key)


@dataclass
class Target:
    name: str
    proc: subprocess.Popen[bytes]
    tls_port: int
    tcp_port: int | None
    mqtt: bool  # speaks MQTT (else: bare TLS server answering CONNACK to anything)

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def mosquitto(work: Path, certs: Certs) -> Iterator[Target | str]:
    if not Path(MOSQUITTO).exists():
        yield f"{MOSQUITTO} not installed"
        return
    tcp_port, tls_port = free_ports(2)
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"""user root
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type error
max_queued_messages 10000
listener {tcp_port} 127.0.0.1
listener {tls_port} 127.0.0.1
cafile {certs.ca_file}
certfile {certs.server_cert}
keyfile {certs.server_key}
require_certificate true
"""
    )
    # stderr off: mosquitto logs every client that closes without a TLS close_notify.
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if not wait_for_port(tcp_port, 10, proc) or not wait_for_port(tls_port, 5, proc):
            yield f"mosquitto did not start (exit code {proc.poll()})"
            return
        yield Target("mosquitto", proc, tls_port, tcp_port, mqtt=True)
    finally:
        stop_process(proc)


@contextlib.contextmanager
def lantern(
    work: Path, tcp: bool = True, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Target, Certs] | str]:
    """A fresh ``lantern serve``; ``tcp=False``: no plain listener (every file descriptor the
    process has is then shared by the mTLS listener and HTTP only)."""
    data_dir = Path(tempfile.mkdtemp(prefix="lantern-data-", dir=work))
    tls_port, tcp_port, http_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
    env.update(
        LANTERN_DATA_DIR=str(data_dir),
        LANTERN_MQTT__PORT=str(tls_port),
        LANTERN_HTTP__PORT=str(http_port),
        LANTERN_MQTT__HOST="127.0.0.1",
        # The same per-session QoS 1 queue bound as the Mosquitto configuration above
        # (max_queued_messages 10000): the saturation runs keep up to 10000 messages in flight.
        LANTERN_MQTT__MAX_QUEUED_MESSAGES="10000",
    )
    if tcp:
        # The load generator connects without credentials on the plain listener.
        env.update(
            LANTERN_MQTT__TCP_PORT=str(tcp_port),
            LANTERN_PROVISIONING__ANONYMOUS_LISTENERS='["tcp"]',
        )
    env.update(extra_env or {})
    log_file = data_dir.parent / f"{data_dir.name}.log"
    log = log_file.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lantern", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # HTTP first (the whole server is up), then the MQTT listener.
        if not wait_for_port(http_port, 60, proc) or not wait_for_port(tls_port, 10, proc):
            tail = log_file.read_text(errors="replace")[-600:]
            yield f"no MQTT listener on {tls_port} (exit code {proc.poll()}); log tail:\n{tail}"
            return
        tcp_ok = tcp and wait_for_port(tcp_port, 5, proc)
        certs = issue_client_cert(data_dir / "ca", work)
        register_claim_certificate(data_dir, certs.client_cert)
        yield Target("lantern", proc, tls_port, tcp_port if tcp_ok else None, mqtt=True), certs
    finally:
        stop_process(proc)
        log.close()


def register_claim_certificate(data_dir: Path, cert_file: Path) -> None:
    """Register the bench certificate as an active fleet-provisioning *claim* certificate.

    Lantern's gateway refuses certificates that are not in its registry, and a device
    certificate ties the client id to its thing name (10k connections with one device
    certificate would take each other over). A claim certificate accepts any client id, and
    idle claim connections are a real case (devices waiting to provision)."""
    from lantern.pki import certificate_id, load_certificate
    from lantern.store import Database
    from lantern.store import registry as reg

    pem = cert_file.read_text()
    cert_id = certificate_id(load_certificate(pem.encode()))

    async def register() -> None:
        db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}")
        try:
            async with db.transaction() as conn:
                now = time.time()
                await reg.insert_certificate(
                    conn,
                    reg.CertificateRecord(
                        id=cert_id,
                        pem=pem,
                        kind="claim",
                        status="ACTIVE",
                        project="default",
                        thing_name=None,
                        created_at=now,
                        updated_at=now,
                    ),
                )
                await reg.insert_claim(
                    conn,
                    reg.ClaimRecord(
                        id="bench-claim",
                        certificate_id=cert_id,
                        project="default",
                        description="bench/mqtt.py idle connections",
                        allowed_templates=(),
                        device_limit=None,
                        created_at=now,
                        revoked_at=None,
                    ),
                )
        finally:
            await db.close()

    asyncio.run(register())


@contextlib.contextmanager
def bare_tls_server(impl: str, loop: str, certs: Certs) -> Iterator[Target]:
    """A server process with only a TLS transport (``lean`` = Lantern's, ``asyncio`` = stdlib)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "_tlsserver", impl, loop, str(certs.server_cert),
         str(certs.server_key), str(certs.ca_file)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield Target(f"{impl} TLS ({loop})", proc, port, None, mqtt=False)
    finally:
        stop_process(proc)


def run_tls_server(impl: str, loop_name: str, cert: str, key: str, ca: str) -> None:
    """Child process: a bare TLS server answering CONNACK to any input (for memory figures)."""
    raise_fd_limit()
    sys.path.insert(0, str(ROOT / "src"))
    from lantern.mqtt.transport import ByteStream, make_server_ssl_context, start_tls_listener

    connack = b"\x20\x02\x00\x00"

    class Reply:
        __slots__ = ("stream",)

        def stream_opened(self, stream: ByteStream) -> None:
            self.stream = stream

        def data_received(self, data: bytes) -> None:
            self.stream.write(connack)

        def stream_closed(self, exc: BaseException | None) -> None:
            pass

        def pause_writing(self) -> None:
            pass

        def resume_writing(self) -> None:
            pass

    class AsyncioReply(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(connack)

    async def main() -> None:
        ctx = make_server_ssl_context(cert, key, ca)
        if impl == "lean":
            listener = await start_tls_listener(
                "bench", "127.0.0.1", 0, Reply, ssl_context=ctx, max_connections=100_000
            )
            port = listener.port
        else:
            server = await asyncio.get_running_loop().create_server(
                AsyncioReply, "127.0.0.1", 0, ssl=ctx, backlog=1024
            )
            port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        if loop_name == "uvloop":
            import uvloop

            uvloop.run(main())
        else:
            asyncio.run(main())


# ------------------------------------------------------------------------------------------------
# Memory: N idle mTLS connections from a separate process
# ------------------------------------------------------------------------------------------------


def idle_client(port: int, n: int, certs: Certs, send_connect: bool, conn: Connection) -> None:
    """Child process: open ``n`` mTLS connections (CONNECT -> CONNACK), report, hold, close."""
    raise_fd_limit()
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    ctx.load_cert_chain(certs.client_cert, certs.client_key)
    sel = selectors.DefaultSelector()
    done: list[ssl.SSLSocket] = []
    started = failed = 0
    window = int(os.environ.get("WINDOW", "64"))
    in_progress = 0
    pid = os.getpid()
    deadline = time.monotonic() + max(60.0, n / 50)
    while len(done) + failed < n and time.monotonic() < deadline:
        while started < n and in_progress < window:
            raw = socket.socket()
            raw.setblocking(False)
            s = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
            s.connect_ex(("127.0.0.1", port))
            packet = connect_packet(f"idle-{pid}-{started}") if send_connect else b"\xc0\x00"
            sel.register(s, selectors.EVENT_WRITE, ["handshake", packet, b""])
            started += 1
            in_progress += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj  # type: ignore[assignment]
            state = key.data
            try:
                if state[0] == "handshake":
                    s.do_handshake()
                    s.send(state[1])
                    state[0] = "reply"
                    sel.modify(s, selectors.EVENT_READ, state)
                else:
                    state[2] += s.recv(16)
                    if len(state[2]) >= CONNACK_LEN:
                        sel.unregister(s)
                        in_progress -= 1
                        if state[2][3] == 0:  # CONNACK return code: accepted
                            done.append(s)
                        else:
                            s.close()
                            failed += 1
            except ssl.SSLWantReadError:
                sel.modify(s, selectors.EVENT_READ, state)
            except ssl.SSLWantWriteError:
                sel.modify(s, selectors.EVENT_WRITE, state)
            except OSError:
                sel.unregister(s)
                s.close()
                in_progress -= 1
                failed += 1
    conn.send(("ready", len(done), failed))
    conn.recv()  # "close"
    # Connections the server closed meanwhile (e.g. taken over) are readable (EOF): count them.
    check = selectors.DefaultSelector()
    for s in done:
        check.register(s, selectors.EVENT_READ)
    dropped = len(check.select(timeout=0))
    check.close()
    for s in done:
        s.close()
    conn.send(("closed", dropped))


def measure_idle_memory(target: Target, n: int, certs: Certs) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    time.sleep(0.3)
    before = rss_bytes(target.pid)
    t0 = time.monotonic()
    proc = ctx.Process(target=idle_client, args=(target.tls_port, n, certs, target.mqtt, child))
    proc.start()
    _, ok, failed = parent.recv()
    elapsed = time.monotonic() - t0
    time.sleep(0.5)  # let the server finish any work following the last CONNACK
    after = rss_bytes(target.pid)
    parent.send("close")
    _, dropped = parent.recv()
    proc.join()
    return {
        "n": n,
        "ok": ok,
        "failed": failed,
        "dropped": dropped,
        "per_conn": (after - before) / max(ok, 1),
        "before": before,
        "after": after,
        "connect_rate": ok / elapsed if elapsed else 0.0,
    }


# ------------------------------------------------------------------------------------------------
# Throughput and latency: publisher and subscriber processes (uvloop, raw protocols)
# ------------------------------------------------------------------------------------------------


class MqttClient(asyncio.Protocol):
    """One raw MQTT connection: counts deliveries, records latencies, acks QoS 1."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.splitter = PacketSplitter()
        self.transport: asyncio.Transport | None = None
        self.connack = asyncio.get_running_loop().create_future()
        self.suback = asyncio.get_running_loop().create_future()
        self.paused = False
        self.resumed: asyncio.Event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # Cheap on purpose (the generator must not be the bottleneck): PUBLISHes are walked
        # in place (no copy per packet); other packets go through the splitter.
        stats = self.stats
        now = time.monotonic_ns()
        buf = self.splitter.buf
        buf += data
        acks: list[bytes] = []
        latencies = stats.latencies
        pos, n, count = 0, len(buf), 0
        while n - pos >= 2:
            first, rl = buf[pos], buf[pos + 1]
            if first >> 4 != 3 or rl & 0x80:
                break  # not a PUBLISH of the benchmark's size: the general path below
            end = pos + 2 + rl
            if end > n:
                break
            count += 1
            latencies.append(now - int.from_bytes(buf[end - PAYLOAD_SIZE : end - PAYLOAD_SIZE + 8]))
            if first & 0x06:
                at = pos + 4 + (buf[pos + 2] << 8 | buf[pos + 3])
                acks.append(PUBACK + buf[at : at + 2])
            pos = end
        if pos:
            del buf[:pos]
        stats.delivered += count
        if buf:
            for first, packet in self.splitter.feed(b""):
                kind = first >> 4
                if kind == 3:
                    stats.delivered += 1
                    ts = int.from_bytes(packet[-PAYLOAD_SIZE : -PAYLOAD_SIZE + 8], "big")
                    latencies.append(now - ts)
                    if first & 0x06:
                        hdr = 2
                        while packet[hdr - 1] & 0x80:
                            hdr += 1
                        pid_at = hdr + 2 + int.from_bytes(packet[hdr : hdr + 2], "big")
                        acks.append(PUBACK + bytes(packet[pid_at : pid_at + 2]))
                elif kind == 4:
                    stats.acked += 1
                elif kind == 2 and not self.connack.done():
                    self.connack.set_result(packet[3])
                elif kind == 9 and not self.suback.done():
                    self.suback.set_result(packet[-1])
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        stats.shared.value = stats.delivered

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.lost += 1


@dataclass
class Stats:
    shared: Any  # multiprocessing RawValue('q'): deliveries, read by the coordinator
    delivered: int = 0
    acked: int = 0
    lost: int = 0
    latencies: array.array[int] = field(default_factory=lambda: array.array("q"))


async def open_clients(port: int, n: int, stats: Stats, prefix: str) -> list[MqttClient]:
    loop = asyncio.get_running_loop()
    clients: list[MqttClient] = []
    sem = asyncio.Semaphore(100)

    async def one(i: int) -> None:
        async with sem:
            _, client = await loop.create_connection(lambda: MqttClient(stats), "127.0.0.1", port)
            assert client.transport is not None
            client.transport.write(connect_packet(f"{prefix}-{os.getpid()}-{i}"))
            code = await asyncio.wait_for(client.connack, 10)
            if code != 0:
                raise RuntimeError(f"CONNACK {code}")
            clients.append(client)

    await asyncio.gather(*(one(i) for i in range(n)))
    return clients


def subscriber_main(port: int, topics: list[str], shared: Any, conn: Connection) -> None:
    raise_fd_limit()
    import uvloop

    async def main() -> None:
        stats = Stats(shared)
        clients = await open_clients(port, len(topics), stats, "sub")
        for client, topic in zip(clients, topics, strict=True):
            assert client.transport is not None
            client.transport.write(subscribe_packet(1, topic, 1))
        await asyncio.wait_for(asyncio.gather(*(c.suback for c in clients)), 30)
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "collect":
                conn.send((stats.delivered, stats.latencies.tobytes(), stats.lost))
                stats.latencies = array.array("q")
            elif cmd == "stop":
                for client in clients:
                    if client.transport is not None:
                        client.transport.close()
                conn.send("stopped")
                return

    uvloop.run(main())


def publisher_main(
    port: int, topics: list[str], shared_delivered: list[Any], fanout: int, conn: Connection
) -> None:
    raise_fd_limit()
    import uvloop

    async def main() -> None:
        stats = Stats(mp.RawValue("q", 0))
        clients = await open_clients(port, len(topics), stats, "pub")
        headers = {qos: [publish_header(t, qos) for t in topics] for qos in (0, 1)}
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "stop":
                for client in clients:
                    if client.transport is not None:
                        client.transport.close()
                conn.send("stopped")
                return
            _, qos, rate, duration, window = cmd
            stats.acked = 0
            sent = await publish_for(
                clients, headers[qos], qos, rate, duration, window, shared_delivered, fanout
            )
            deadline = time.monotonic() + 10
            while qos and stats.acked < sent and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            conn.send((sent, stats.acked))

    uvloop.run(main())


async def publish_for(
    clients: list[MqttClient],
    headers: list[bytes],
    qos: int,
    rate: float | None,
    duration: float,
    window: int,
    shared_delivered: list[Any],
    fanout: int,
) -> int:
    """Send for ``duration`` s: at ``rate`` msgs/s (1 ms ticks), or as fast as the window allows."""
    n = len(clients)
    min_batch = max(1, window // 20)  # saturation: wait for this much room in the window
    start = time.monotonic()
    base_delivered = sum(v.value for v in shared_delivered)
    sent = 0
    packet_id = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= duration:
            return sent
        if rate is not None:
            due = int(rate * elapsed) - sent
        else:
            delivered = sum(v.value for v in shared_delivered) - base_delivered
            due = min(window - (sent - delivered // fanout), 64 * n)
            if due < min_batch:
                # The window is (nearly) full: the broker has plenty queued. Sleep instead of
                # polling, so that the generator does not take CPU from the broker (2 cores).
                await asyncio.sleep(0.001)
                continue
        if due > 0:
            batches: list[list[bytes]] = [[] for _ in range(n)]
            payload = _ts_payload(time.monotonic_ns())
            for k in range(due):
                i = (sent + k) % n
                if qos:
                    packet_id = packet_id % 65535 + 1
                    batches[i].append(headers[i] + packet_id.to_bytes(2, "big") + payload)
                else:
                    batches[i].append(headers[i] + payload)
            sent += due
            for client, batch in zip(clients, batches, strict=True):
                if batch and client.transport is not None:
                    client.transport.write(b"".join(batch))
            if any(c.paused for c in clients):
                await asyncio.wait(
                    [asyncio.ensure_future(c.resumed.wait()) for c in clients if c.paused],
                    timeout=0.05,
                )
        await asyncio.sleep(0.001 if rate is not None else 0)


@dataclass
class RunResult:
    label: str
    delivered_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_per_1k: float | None = None
    client_cpu: float = 0.0
    note: str = ""


class LoadGenerator:
    """Coordinates a publisher process and a subscriber process against one broker port."""

    def __init__(self, port: int, server_pid: int, topology: str) -> None:
        self.port, self.server_pid, self.topology = port, server_pid, topology
        if topology == "p2p":
            self.pub_topics = [f"bench/p2p/{i}" for i in range(10)]
            sub_topics = list(self.pub_topics)
            self.fanout = 1
        else:
            self.pub_topics = ["bench/fanout"]
            sub_topics = ["bench/fanout"] * 1000
            self.fanout = 1000
        ctx = mp.get_context("fork")
        # Fan-out: 1000 deliveries per publish arrive on 1000 connections; two subscriber
        # processes keep the generator from being the bottleneck.
        procs = 1 if topology == "p2p" else 2
        self.shareds = [ctx.RawValue("q", 0) for _ in range(procs)]
        self.expected = 0  # deliveries expected so far (the subscribers' counters are cumulative)
        self.subs: list[tuple[Any, Connection]] = []
        for k in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=subscriber_main,
                args=(port, sub_topics[k::procs], self.shareds[k], child),
            )
            proc.start()
            self.subs.append((proc, parent))
        for _, parent in self.subs:
            self._expect(parent, "ready", 60)
        self.pub_conn, pub_child = ctx.Pipe()
        self.pub = ctx.Process(
            target=publisher_main,
            args=(port, self.pub_topics, self.shareds, self.fanout, pub_child),
        )
        self.pub.start()
        self._expect(self.pub_conn, "ready", 30)

    @property
    def delivered(self) -> int:
        return sum(v.value for v in self.shareds)

    def _client_cpu(self) -> float:
        return cpu_seconds(self.pub.pid) + sum(cpu_seconds(p.pid) for p, _ in self.subs)

    def _collect(self) -> tuple[array.array[int], int]:
        lat: array.array[int] = array.array("q")
        lost = 0
        for _, conn in self.subs:
            conn.send("collect")
            _, lat_bytes, sub_lost = conn.recv()
            lat.frombytes(lat_bytes)
            lost += sub_lost
        return lat, lost

    @staticmethod
    def _expect(conn: Connection, what: str, timeout: float) -> None:
        if not conn.poll(timeout):
            raise RuntimeError(f"load generator not {what} after {timeout}s")
        got = conn.recv()
        if got != what:
            raise RuntimeError(f"load generator: expected {what}, got {got}")

    def run(
        self, label: str, qos: int, rate: float | None, duration: float, warmup: float
    ) -> RunResult:
        self._collect()  # reset latencies
        window = 10000 if self.fanout == 1 else 50
        client_cpu0 = self._client_cpu()
        self.pub_conn.send(("run", qos, rate, warmup + duration, window))
        time.sleep(warmup)
        d0, c0, t0 = self.delivered, cpu_seconds(self.server_pid), time.monotonic()
        time.sleep(duration)
        d1, c1, t1 = self.delivered, cpu_seconds(self.server_pid), time.monotonic()
        if not self.pub_conn.poll(duration + 30):
            raise RuntimeError("publisher did not finish")
        sent, acked = self.pub_conn.recv()
        self.expected += sent * self.fanout
        missing = self._drain(self.expected)
        self.expected = self.delivered  # resync (deliveries may have been dropped)
        client_cpu = self._client_cpu() - client_cpu0
        lat, lost = self._collect()
        result = RunResult(label)
        result.delivered_rate = (d1 - d0) / (t1 - t0)
        if d1 > d0:
            result.cpu_per_1k = (c1 - c0) / ((d1 - d0) / 1000)
        result.client_cpu = client_cpu / (warmup + duration)
        if rate is not None and lat:
            ordered = sorted(lat)
            result.p50_ms = ordered[len(ordered) // 2] / 1e6
            result.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6
        notes = []
        if qos and acked < sent:
            notes.append(f"{sent - acked} PUBACKs missing")
        if missing:
            notes.append(f"{missing} of {sent * self.fanout} not delivered")
        if lost:
            notes.append(f"{lost} connections lost")
        result.note = "; ".join(notes)
        return result

    def _drain(self, expected: int, timeout: float = 20.0) -> int:
        """Wait until every sent message was delivered (or nothing moves for 2 s)."""
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.delivered
            if value >= expected:
                return 0
            if value != last:
                last, stable_since = value, time.monotonic()
            elif time.monotonic() - stable_since > 2.0:
                break
            time.sleep(0.02)
        return max(0, expected - self.delivered)

    def close(self) -> None:
        pairs = [(self.pub_conn, self.pub, ("stop",))] + [(c, p, "stop") for p, c in self.subs]
        for conn, proc, message in pairs:
            with contextlib.suppress(Exception):
                conn.send(message)
                conn.poll(10)
            proc.join(5)
            if proc.is_alive():
                proc.kill()


# ------------------------------------------------------------------------------------------------
# Orchestration and report
# ------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    duration: float
    warmup: float
    p2p_loads: list[int]
    fanout_loads: list[int]
    memory_sizes: list[int]
    asyncio_sizes: list[int]
    qos_levels: list[int]


def plan_for(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(2.0, 0.5, [2000], [5], [1000], [1000], [0, 1])
    return Plan(4.0, 1.0, [1000, 5000], [5, 20], [1000, 10000], [1000], [0, 1])


def throughput_runs(target: Target, plan: Plan) -> list[RunResult]:
    assert target.tcp_port is not None
    results: list[RunResult] = []
    for topology, loads in (("p2p", plan.p2p_loads), ("fanout", plan.fanout_loads)):
        print(f"  [{target.name}] {topology}: connecting ...", flush=True)
        gen = LoadGenerator(target.tcp_port, target.pid, topology)
        try:
            for qos in plan.qos_levels:
                name = "p2p" if topology == "p2p" else "1->1000"
                label = f"QoS{qos} {name} saturation"
                r = gen.run(label, qos, None, plan.duration, plan.warmup)
                print(f"    {fmt_run(r)}", flush=True)
                results.append(r)
                for load in loads:
                    offered = load * gen.fanout
                    label = f"QoS{qos} {name} @{offered}/s"
                    r = gen.run(label, qos, load, plan.duration, plan.warmup)
                    print(f"    {fmt_run(r)}", flush=True)
                    results.append(r)
        finally:
            gen.close()
    return results


def fmt_run(r: RunResult) -> str:
    lat = f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms" if r.p50_ms is not None else ""
    cpu = f"{r.cpu_per_1k * 1000:6.1f} ms CPU/1k" if r.cpu_per_1k is not None else ""
    note = f"  ({r.note})" if r.note else ""
    return (
        f"{r.label:<30} {r.delivered_rate:>10,.0f} msg/s  {lat:<32} {cpu}"
        f"  gen CPU {r.client_cpu:4.0%}{note}"
    )


def memory_runs(target: Target, sizes: list[int], certs: Certs) -> list[dict[str, Any]]:
    out = []
    for n in sizes:
        m = measure_idle_memory(target, n, certs)
        print(
            f"    [{target.name}] {n:>6} idle mTLS connections: {m['ok']} ok, {m['failed']} failed,"
            f" {m['dropped']} closed by the server before the measurement ended,"
            f" {m['per_conn'] / 1024:7.1f} KiB/conn (RSS {m['before'] / 2**20:.0f} ->"
            f" {m['after'] / 2**20:.0f} MiB, {m['connect_rate']:.0f} conn/s)",
            flush=True,
        )
        out.append(m)
    return out


@contextlib.contextmanager
def start_broker(name: str, work: Path) -> Iterator[tuple[Target, Certs] | str]:
    """A fresh Mosquitto or Lantern process with a client certificate it accepts."""
    if name == "lantern":
        with lantern(work) as started:
            yield started
        return
    certs = issue_client_cert(work / "bench-ca", work)
    with mosquitto(work, certs) as started_mosquitto:
        yield (
            started_mosquitto if isinstance(started_mosquitto, str) else (started_mosquitto, certs)
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="MQTT benchmark: Lantern vs Mosquitto (throughput, latency, CPU, memory).",
        epilog="Takes about 4-5 minutes (--quick: about 1 minute). Needs no network access.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs, 1k connections only")
    parser.add_argument(
        "--only",
        choices=["throughput", "memory"],
        help="run only the throughput/latency part or only the idle-memory part",
    )
    parser.add_argument("--skip-mosquitto", action="store_true")
    parser.add_argument("--skip-lantern", action="store_true")
    parser.add_argument(
        "--transport-only",
        action="store_true",
        help="memory part: only the bare TLS servers (Lantern's transport vs asyncio's)",
    )
    parser.add_argument(
        "--client-key",
        choices=["EC_P256", "RSA_2048"],
        default="EC_P256",
        help="key type of the client certificate used by the idle mTLS connections",
    )
    args = parser.parse_args()
    os.environ["BENCH_CLIENT_KEY"] = args.client_key
    plan = plan_for(args)
    fd_limit = raise_fd_limit()
    plan.memory_sizes = [n for n in plan.memory_sizes if n + 100 < fd_limit]
    sys.path.insert(0, str(ROOT / "src"))
    work = Path(tempfile.mkdtemp(prefix="lantern-bench-"))
    started = time.monotonic()
    summary: dict[str, dict[str, Any]] = {}
    try:
        if args.only != "throughput":
            # Each size on a fresh server process: memory freed by an earlier run would be
            # reused without showing in RSS and make the figure look smaller.
            print(f"== idle memory per mTLS connection (fd limit {fd_limit}) ==", flush=True)
            certs = issue_client_cert(work / "bench-ca", work)
            for impl, loop, sizes in (
                ("lean", "uvloop", plan.memory_sizes),
                ("lean", "asyncio", plan.asyncio_sizes),
                ("asyncio", "uvloop", plan.asyncio_sizes),
                ("asyncio", "asyncio", plan.asyncio_sizes),
            ):
                for n in sizes:
                    with bare_tls_server(impl, loop, certs) as target:
                        entry = summary.setdefault(target.name, {})
                        entry.setdefault("memory", []).extend(memory_runs(target, [n], certs))
        for name in ("mosquitto", "lantern"):
            if getattr(args, f"skip_{name}") or (args.only == "memory" and args.transport_only):
                continue
            print(f"== {name} ==", flush=True)
            entry = summary.setdefault(name, {})
            parts = [] if args.only == "memory" else [0]
            if args.only != "throughput":
                parts += plan.memory_sizes
            for size in parts:  # 0: throughput and latency; n: idle memory at n connections
                with start_broker(name, work) as started_target:
                    if isinstance(started_target, str):
                        print(f"  skipped: {started_target}", flush=True)
                        entry["skipped"] = started_target
                        break
                    target, certs = started_target
                    if size:
                        entry.setdefault("memory", []).extend(memory_runs(target, [size], certs))
                    elif target.tcp_port is None:
                        print("  throughput skipped: no plain TCP listener", flush=True)
                    else:
                        entry["runs"] = throughput_runs(target, plan)
        print_summary(summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print(f"(total {time.monotonic() - started:.0f} s)")


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    print("\n== summary ==")
    for name, entry in summary.items():
        for m in entry.get("memory", []):
            print(f"{name:<24} idle mTLS @{m['n']:>6}: {m['per_conn'] / 1024:7.1f} KiB/conn")
    mos = {r.label: r for r in summary.get("mosquitto", {}).get("runs", [])}
    lan = {r.label: r for r in summary.get("lantern", {}).get("runs", [])}
    if mos or lan:
        print(f"\n{'run':<30} {'mosquitto':>14} {'lantern':>14} {'ratio':>7}")
        for label in list(dict.fromkeys([*mos, *lan])):
            m, la = mos.get(label), lan.get(label)
            mv = f"{m.delivered_rate:,.0f}/s" if m else "-"
            lv = f"{la.delivered_rate:,.0f}/s" if la else "-"
            ratio = ""
            if m and la and m.delivered_rate:
                ratio = f"{la.delivered_rate / m.delivered_rate:.2f}x"
            print(f"{label:<30} {mv:>14} {lv:>14} {ratio:>7}")
            for attr, unit in (("p50_ms", "ms"), ("p99_ms", "ms")):
                a = getattr(m, attr) if m else None
                b = getattr(la, attr) if la else None
                if a is not None or b is not None:
                    sa = f"{a:.2f} {unit}" if a is not None else "-"
                    sb = f"{b:.2f} {unit}" if b is not None else "-"
                    print(f"  {attr[:3]:<28} {sa:>14} {sb:>14}")
            a = m.cpu_per_1k if m else None
            b = la.cpu_per_1k if la else None
            if a is not None or b is not None:
                sa = f"{a * 1000:.1f} ms" if a is not None else "-"
                sb = f"{b * 1000:.1f} ms" if b is not None else "-"
                print(f"  {'CPU per 1k msgs':<28} {sa:>14} {sb:>14}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_tlsserver":
        run_tls_server(*sys.argv[2:7])
    else:
        main()
