"""Benchmark: MQTT QoS 1 across cluster nodes, ``--workers 2`` and Mosquitto, then node failover.

Not a test. One run, one load generator (raw asyncio MQTT 3.1.1 connections, QoS 1, 64-byte
payloads; ``--pairs`` publisher/subscriber pairs, each on its own topic), every target in turn:

* (e) Mosquitto (a private one on a free port; the service on 127.0.0.1:1883 if that fails);
* (d1) ``lantern serve`` on the embedded default (SQLite, local files), one process;
* (d) ``lantern serve --workers 2`` on the same default (workers share an embedded NATS);
* (a) one cluster node (PostgreSQL, the NATS at ``--nats-url``), publisher and subscriber on it;
* (b) two nodes, every publisher on node 0, every subscriber on node 1;
* (c) three nodes, the same load; node 2 has no subscriber (its CPU per message should be ~0);
* (f) ``kill -9`` of one of two nodes with ``--devices`` connected devices (spread over both):
  each device echoes a message through its own topic; those that lose their node reconnect to
  the other one. Prints the time until all are connected and exchanging messages again.

For (a)-(e) it prints the saturation throughput (closed loop: each pair keeps ``--window``
messages in flight, from PUBLISH until the subscriber has received it), p50/p99 publish->delivery
latency at a fixed paced load (``--rate`` messages/s in total), and CPU seconds per message from
/proc (utime+stime) summed over every Lantern process (children included) and the NATS server —
the system one found by ``pgrep nats-server`` for the cluster, the embedded one for
``--workers``. The generator's own CPU is printed too: when it nears one core the figure is
client-bound. The system NATS is shared with anything else running on the machine; its CPU
counts whatever that does meanwhile.

Needs the local PostgreSQL (``LANTERN_TEST_POSTGRES_URL``, default
postgresql+asyncpg://postgres@127.0.0.1/test: a fresh database is created and dropped) and NATS
with JetStream (``--nats-url``, default ``LANTERN_TEST_NATS_URL`` or nats://127.0.0.1:4222);
S3 is moto's server on a free port. Run from the repository root:

    .venv/bin/python bench/cluster.py            # full run, several minutes
    .venv/bin/python bench/cluster.py --quick    # 1 s phases, 50 devices: checks it works
                                                 # (under 2 minutes, mostly servers starting)
    .venv/bin/python bench/cluster.py --duration 20 --rate 2000 --devices 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests"))  # after bench/: `ingest` and `mqtt` are bench/'s modules

from ingest import closed_loop, cpu_seconds, drain, paced_load, percentiles  # noqa: E402
from lantern.cluster.bus import cluster_name  # noqa: E402
from mqtt import (  # noqa: E402
    MOSQUITTO,
    PAYLOAD_SIZE,
    PUBACK,
    PacketSplitter,
    connect_packet,
    free_ports,
    publish_header,
    raise_fd_limit,
    stop_process,
    subscribe_packet,
    wait_for_port,
)
from support.cluster import _drop_buckets, database  # noqa: E402
from support.process import LanternProcess  # noqa: E402

NATS_URL = os.environ.get("LANTERN_TEST_NATS_URL", "nats://127.0.0.1:4222")
SECRET = "bench cluster secret, not for production"
PAD = b"x" * (PAYLOAD_SIZE - 8)
START_TIMEOUT = 120.0  # several servers start on a shared, busy machine


# ------------------------------------------------------------------------------------------------
# The load generator: raw MQTT 3.1.1 connections
# ------------------------------------------------------------------------------------------------


class Conn(asyncio.Protocol):
    """One MQTT connection: acknowledges QoS 1 deliveries and hands their payload on."""

    def __init__(self, on_publish: Callable[[bytes], None] | None) -> None:
        loop = asyncio.get_running_loop()
        self.on_publish = on_publish
        self.splitter = PacketSplitter()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = loop.create_future()
        self.suback: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        acks: list[bytes] = []
        for first, packet in self.splitter.feed(data):
            kind = first >> 4
            if kind == 3:
                hdr = 2
                while packet[hdr - 1] & 0x80:
                    hdr += 1
                at = hdr + 2 + int.from_bytes(packet[hdr : hdr + 2], "big")
                if first & 0x06:
                    acks.append(PUBACK + packet[at : at + 2])
                    at += 2
                if self.on_publish is not None:
                    self.on_publish(packet[at:])
            elif kind == 2 and not self.connack.done():
                self.connack.set_result(packet[3])
            elif kind == 9 and not self.suback.done():
                self.suback.set_result(packet[-1])
        if acks and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(acks))

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.connack, self.suback):
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
                fut.exception()  # retrieved: whoever awaits it still gets the error
        if not self.closed.done():
            self.closed.set_result(None)

    @property
    def alive(self) -> bool:
        return not self.closed.done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_conn(
    port: int, client_id: str, on_publish: Callable[[bytes], None] | None = None
) -> Conn:
    """Connect (clean session), wait for a successful CONNACK."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Conn(on_publish), "127.0.0.1", port)
    assert conn.transport is not None
    conn.transport.write(connect_packet(client_id, keepalive=60))
    code = await asyncio.wait_for(conn.connack, 10)
    if code != 0:
        conn.close()
        raise ConnectionError(f"CONNACK return code {code} from port {port}")
    return conn


async def subscribe(conn: Conn, topic: str) -> None:
    assert conn.transport is not None
    conn.transport.write(subscribe_packet(1, topic, 1))
    granted = await asyncio.wait_for(conn.suback, 10)
    if granted == 0x80:
        raise RuntimeError(f"SUBSCRIBE {topic!r} refused")


@dataclass(eq=False)
class Pair:
    """A publisher and a subscriber on one topic. A message is in flight (``sent``) from its
    PUBLISH until the subscriber receives it; the payload starts with its sequence number."""

    topic: str
    sent: dict[int, float] = field(default_factory=dict)
    delivered: int = 0
    unexpected: int = 0
    latencies: list[float] | None = None
    seq: int = 0
    slot: asyncio.Future[None] | None = None
    pub: Conn | None = None
    sub: Conn | None = None

    async def open(self, pub_port: int, sub_port: int, name: str) -> None:
        self.sub = await open_conn(sub_port, f"{name}-sub", self.on_publish)
        await subscribe(self.sub, self.topic)
        self.pub = await open_conn(pub_port, f"{name}-pub")
        self.header = publish_header(self.topic, 1)

    def publish(self) -> None:
        self.seq += 1
        pid = self.seq % 65535 + 1
        self.sent[self.seq] = time.perf_counter()
        assert self.pub is not None and self.pub.transport is not None
        self.pub.transport.write(
            self.header + pid.to_bytes(2, "big") + self.seq.to_bytes(8, "big") + PAD
        )

    def on_publish(self, payload: bytes) -> None:
        t0 = self.sent.pop(int.from_bytes(payload[:8], "big"), None)
        if t0 is None:
            self.unexpected += 1  # a duplicate, or not ours
            return
        self.delivered += 1
        if self.latencies is not None:
            self.latencies.append(time.perf_counter() - t0)
        if self.slot is not None and not self.slot.done():
            self.slot.set_result(None)

    async def wait_slot(self, window: int) -> None:
        while len(self.sent) >= window:
            self.slot = asyncio.get_running_loop().create_future()
            await self.slot

    def close(self) -> None:
        for conn in (self.pub, self.sub):
            if conn is not None:
                conn.close()


# ------------------------------------------------------------------------------------------------
# CPU accounting
# ------------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return "?"


def safe_cpu(pid: int) -> float:
    """:func:`cpu_seconds`, read again when a child ended while it was being read."""
    for _ in range(3):
        with contextlib.suppress(OSError):
            return cpu_seconds(pid)
    return cpu_seconds(pid)


def nats_tree_cpu(pid: int) -> float:
    """CPU of the nats-server processes below ``pid`` (the embedded NATS of --workers)."""
    total = 0.0
    for child in children(pid):
        total += cpu_seconds(child) if comm(child) == "nats-server" else nats_tree_cpu(child)
    return total


def system_nats_pid(url: str) -> int | None:
    """The pid of the nats-server serving ``url`` (by its port on the command line)."""
    port = url.rsplit(":", 1)[-1].split("/")[0].split(",")[0]
    found = subprocess.run(["pgrep", "-a", "nats-server"], capture_output=True, text=True)
    lines = found.stdout.splitlines()
    for line in lines:
        words = line.split()
        if f"-p {port}" in line or f"--port {port}" in line or f":{port}" in words[-1]:
            return int(words[0])
    return int(lines[0].split()[0]) if len(lines) == 1 else None


@dataclass
class Meter:
    """CPU seconds of named processes: Lantern processes (with their children) and NATS."""

    lantern: dict[str, int]
    nats: dict[str, int] = field(default_factory=dict)
    embedded_nats_in: int | None = None  # a supervisor pid whose nats-server child is NATS

    def read(self) -> dict[str, float]:
        out = {name: safe_cpu(pid) for name, pid in self.lantern.items()}
        out |= {name: safe_cpu(pid) for name, pid in self.nats.items()}
        if self.embedded_nats_in is not None:
            embedded = nats_tree_cpu(self.embedded_nats_in)
            name = next(iter(self.lantern))
            out[name] -= embedded
            out["nats (embedded)"] = embedded
        return out


# ------------------------------------------------------------------------------------------------
# One measurement
# ------------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    rate: float
    p50: float  # ms
    p99: float
    delivered: int
    cpu: dict[str, float]  # seconds during the saturation phase, per process
    nats_names: set[str]
    generator_cpu: float
    elapsed: float
    lost: int
    unexpected: int
    idle_cpu: dict[str, float] = field(default_factory=dict)  # per second, before the load

    def per_msg(self, name: str) -> float:
        return self.cpu[name] / max(1, self.delivered)

    def above_idle_per_msg(self, name: str) -> float:
        """CPU per message of ``name`` beyond what it spends idle (heartbeats, timers)."""
        idle = self.idle_cpu.get(name, 0.0) * self.elapsed
        return (self.cpu[name] - idle) / max(1, self.delivered)

    @property
    def total_per_msg(self) -> float:
        return sum(self.cpu.values()) / max(1, self.delivered)

    @property
    def nats_per_msg(self) -> float:
        return sum(v for k, v in self.cpu.items() if k in self.nats_names) / max(1, self.delivered)


async def measure(
    label: str, pub_ports: Sequence[int], sub_ports: Sequence[int], meter: Meter, args: Args
) -> Result:
    """Open the pairs, saturate (closed loop), then pace ``args.rate``; CPU of the first.
    Before the load, each process's idle CPU rate is read over ``args.duration`` seconds."""
    idle0 = meter.read()
    await asyncio.sleep(args.duration)
    idle1 = meter.read()
    idle_cpu = {k: (idle1[k] - idle0[k]) / args.duration for k in idle1}
    run = secrets.token_hex(3)
    pairs = [Pair(f"bench/{run}/{i}") for i in range(args.pairs)]
    for i, pair in enumerate(pairs):
        await pair.open(pub_ports[i % len(pub_ports)], sub_ports[i % len(sub_ports)], f"b{run}{i}")
    try:
        await closed_loop(pairs, args.window, min(2.0, args.duration), Pair.publish)  # warm-up
        await drain(pairs)
        n0 = sum(p.delivered for p in pairs)
        cpu0, g0, t0 = meter.read(), time.thread_time(), time.perf_counter()
        await closed_loop(pairs, args.window, args.duration, Pair.publish)
        await drain(pairs)
        elapsed = time.perf_counter() - t0
        cpu1, g1 = meter.read(), time.thread_time()
        delivered = sum(p.delivered for p in pairs) - n0
        latencies: list[float] = []
        for p in pairs:
            p.latencies = latencies
        await paced_load(pairs, args.rate, args.duration, Pair.publish)
        await drain(pairs)
        p50, p99 = percentiles(latencies) if latencies else (float("nan"), float("nan"))  # ms
        lost = sum(len(p.sent) for p in pairs)
    finally:
        for pair in pairs:
            pair.close()
    result = Result(
        label,
        delivered / elapsed,
        p50,
        p99,
        delivered,
        {k: cpu1[k] - cpu0[k] for k in cpu1},
        set(meter.nats) | ({"nats (embedded)"} if meter.embedded_nats_in else set()),
        g1 - g0,
        elapsed,
        lost,
        sum(p.unexpected for p in pairs),
        idle_cpu,
    )
    print_result(result, args)
    return result


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def print_result(r: Result, args: Args) -> None:
    gen_load = r.generator_cpu / r.elapsed
    parts = ", ".join(f"{k} {us(r.per_msg(k))}" for k in r.cpu)
    print(
        f"[{r.label}] {r.rate:,.0f} msgs/s at saturation ({r.delivered:,} in {r.elapsed:.1f} s); "
        f"p50 {r.p50:.1f} ms, p99 {r.p99:.1f} ms at {args.rate:,.0f}/s; "
        f"CPU us/msg: total {us(r.total_per_msg)} ({parts}); "
        f"generator {us(r.generator_cpu / max(1, r.delivered))} us/msg, {gen_load:.0%} of a core",
        flush=True,
    )
    if gen_load > 0.8:
        print(f"[{r.label}] the generator used {gen_load:.0%} of a core: client-bound figure")
    if r.rate < args.rate:
        print(f"[{r.label}] --rate {args.rate:,.0f}/s is above saturation: latency is queueing")
    if r.lost or r.unexpected:
        print(f"[{r.label}] NOT delivered: {r.lost}; duplicates/unknown: {r.unexpected}")


# ------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------


@dataclass
class WorkersProcess(LanternProcess):
    """``lantern serve --workers N``."""

    workers: int = 2

    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(self.workers)]


def tcp_env(port: int) -> dict[str, str]:
    """An anonymous plain-TCP MQTT listener (development only) for the generator."""
    return {
        "LANTERN_MQTT__TCP_PORT": str(port),
        "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
        "LANTERN_PROVISIONING__KEY_TYPE": "ec-p256",
    }


@contextlib.contextmanager
def started(proc: LanternProcess) -> Iterator[LanternProcess]:
    """Start ``proc`` unless it runs already; stop it at the end."""
    if proc.proc is None or proc.proc.poll() is not None:
        proc.start(START_TIMEOUT)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop(timeout=30)


@contextlib.contextmanager
def mosquitto(work: Path) -> Iterator[tuple[int, int | None]]:
    """(port, pid): a private Mosquitto, or the service on 1883 (pid from pgrep)."""
    if Path(MOSQUITTO).exists():
        (port,) = free_ports(1)
        conf = work / "mosquitto.conf"
        conf.write_text(
            "allow_anonymous true\npersistence false\nmax_queued_messages 10000\n"
            "set_tcp_nodelay true\n"  # as Lantern and the generator do
            f"listener {port} 127.0.0.1\n"
        )
        proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            if wait_for_port(port, 10, proc):
                yield port, proc.pid
                return
        finally:
            stop_process(proc)
    found = subprocess.run(["pgrep", "-x", "mosquitto"], capture_output=True, text=True)
    pids = found.stdout.split()
    yield 1883, int(pids[0]) if len(pids) == 1 else None


@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port with one bucket, as the cluster tests use it."""
    import boto3
    from moto.server import ThreadedMotoServer

    (port,) = free_ports(1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint, bucket = f"http://127.0.0.1:{port}", f"bench-{secrets.token_hex(4)}"
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=bucket)
        yield {
            "LANTERN_INGEST__STORAGE_BACKEND": "s3",
            "LANTERN_INGEST__S3_BUCKET": bucket,
            "LANTERN_INGEST__S3_ENDPOINT_URL": endpoint,
            "LANTERN_INGEST__S3_ACCESS_KEY_ID": "bench",
            "LANTERN_INGEST__S3_SECRET_ACCESS_KEY": "bench",
            "LANTERN_INGEST__S3_REGION": "us-east-1",
        }
    finally:
        server.stop()


@dataclass
class ClusterNode:
    proc: LanternProcess
    tcp_port: int

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid


class Cluster:
    """Nodes on one fresh PostgreSQL database, the shared NATS and moto's S3, added one by one."""

    def __init__(self, stack: ExitStack, root: Path) -> None:
        self.root = root
        url = stack.enter_context(database())
        stack.callback(_drop_buckets, cluster_name(url))
        self.env = {
            "LANTERN_DATABASE_URL": url,
            "LANTERN_CLUSTER__NATS_URL": NATS_URL,
            "LANTERN_CLUSTER__SECRET": SECRET,
            **stack.enter_context(moto_s3()),
        }
        self.stack = stack
        self.prepared: list[ClusterNode] = []
        for i in range(3):
            (port,) = free_ports(1)
            proc = LanternProcess(root / f"node{i}", env={**self.env, **tcp_env(port)})
            self.prepared.append(ClusterNode(proc, port))
        self.nodes: list[ClusterNode] = []

    def add(self) -> ClusterNode:
        """Start the next node (if it does not run yet) and count it in."""
        node = self.prepared[len(self.nodes)]
        self.stack.enter_context(started(node.proc))
        wait_for_port(node.tcp_port, 30)
        self.nodes.append(node)
        return node

    def meter(self, nats_pid: int | None) -> Meter:
        running = [n for n in self.nodes if n.proc.proc and n.proc.proc.poll() is None]
        return Meter(
            {f"node{self.prepared.index(n)}": n.pid for n in running},
            {"nats": nats_pid} if nats_pid else {},
        )


# ------------------------------------------------------------------------------------------------
# (f) kill -9 of one of two nodes
# ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Device:
    """A device that echoes messages through its own topic and, when its connection is lost,
    reconnects to the next address it knows (a client behind a load balancer does the same)."""

    name: str
    ports: list[int]
    at: int
    conn: Conn | None = None
    waiting: dict[bytes, asyncio.Future[None]] = field(default_factory=dict)
    connected_at: float | None = None
    exchanged_at: float | None = None
    expired: set[bytes] = field(default_factory=set)  # echoes given up on
    late: int = 0  # of those, came back after all
    timeouts: int = 0
    pid: int = 0

    @property
    def topic(self) -> str:
        return f"bench/failover/{self.name}"

    def on_publish(self, payload: bytes) -> None:
        token = payload[:8]
        fut = self.waiting.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        elif token in self.expired:
            self.expired.discard(token)
            self.late += 1

    async def connect(self) -> None:
        self.conn = await open_conn(self.ports[self.at], self.name, self.on_publish)
        await subscribe(self.conn, self.topic)

    async def echo(self, timeout: float) -> bool:
        """Publish QoS 1 to its own topic; whether it came back within ``timeout``."""
        conn = self.conn
        if conn is None or not conn.alive or conn.transport is None:
            return False
        token = secrets.token_bytes(8)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[token] = fut
        self.pid = self.pid % 65535 + 1
        conn.transport.write(
            publish_header(self.topic, 1) + self.pid.to_bytes(2, "big") + token + PAD
        )
        done, _ = await asyncio.wait(
            {fut, conn.closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        self.waiting.pop(token, None)
        if fut not in done:
            self.expired.add(token)
            self.timeouts += conn.alive
        return fut in done

    async def recover(self, t_kill: float, deadline: float) -> None:
        """Connected and one echo through the cluster, after the kill."""
        while time.perf_counter() < deadline:
            if self.conn is None or not self.conn.alive:
                try:
                    await self.connect()
                except (TimeoutError, OSError, ConnectionError, RuntimeError):
                    self.at = (self.at + 1) % len(self.ports)
                    await asyncio.sleep(0.05)
                    continue
                self.connected_at = time.perf_counter() - t_kill
            elif self.connected_at is None:
                self.connected_at = 0.0  # its node survived
            if await self.echo(timeout=2.0):
                self.exchanged_at = time.perf_counter() - t_kill
                return


async def failover(cluster: Cluster, victim: ClusterNode, args: Args) -> None:
    ports = [n.tcp_port for n in cluster.nodes]
    run = secrets.token_hex(3)
    devices = [Device(f"dev-{run}-{i}", ports, i % len(ports)) for i in range(args.devices)]
    gate = asyncio.Semaphore(50)

    async def first(d: Device) -> bool:
        async with gate:
            await d.connect()
        return await d.echo(timeout=10)

    t0 = time.perf_counter()
    ok = await asyncio.gather(*(first(d) for d in devices))
    print(
        f"[f failover] {len(devices):,} devices connected over {len(ports)} nodes and echoing "
        f"({sum(ok):,} echoed) in {time.perf_counter() - t0:.1f} s; kill -9 node "
        f"{ports.index(victim.tcp_port)}",
        flush=True,
    )
    assert victim.proc.proc is not None
    t_kill = time.perf_counter()
    victim.proc.proc.kill()
    deadline = t_kill + args.failover_timeout
    await asyncio.gather(*(d.recover(t_kill, deadline) for d in devices))
    moved = [d.exchanged_at for d in devices if d.connected_at and d.exchanged_at is not None]
    stayed = [d.exchanged_at for d in devices if d.connected_at == 0.0 and d.exchanged_at]
    connected = [d.connected_at for d in devices if d.connected_at is not None]
    exchanged = [d.exchanged_at for d in devices if d.exchanged_at is not None]
    print(
        f"[f failover] after kill -9: {len(connected):,}/{len(devices):,} connected "
        f"(all within {max(connected, default=float('nan')):.1f} s), "
        f"{len(exchanged):,}/{len(devices):,} exchanging messages again "
        f"(all within {max(exchanged, default=float('nan')):.1f} s; p50 "
        f"{sorted(exchanged)[len(exchanged) // 2] if exchanged else float('nan'):.1f} s); "
        f"echo within {max(moved, default=float('nan')):.1f} s for the {len(moved):,} that "
        f"reconnected, {min(stayed, default=float('nan')):.1f}-"
        f"{max(stayed, default=float('nan')):.1f} s for the {len(stayed):,} already on the "
        "survivor",
        flush=True,
    )
    timeouts, late = sum(d.timeouts for d in devices), sum(d.late for d in devices)
    if timeouts:
        print(
            f"[f failover] {timeouts:,} echoes not back within 2 s on a live connection "
            f"({late:,} of them came back later)"
        )
    if len(exchanged) < len(devices):
        print(
            f"[f failover] NOT recovered within {args.failover_timeout:.0f} s: "
            f"{len(devices) - len(exchanged):,} devices"
        )
    for d in devices:
        if d.conn is not None:
            d.conn.close()


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


@dataclass
class Args:
    duration: float
    rate: float
    devices: int
    pairs: int
    window: int
    failover_timeout: float
    skip: set[str]


async def run(args: Args, work: Path, cluster: Cluster | None) -> None:
    results: dict[str, Result] = {}
    nats_pid = system_nats_pid(NATS_URL)
    if nats_pid is None:
        print(f"no single nats-server found for {NATS_URL}: its CPU is not counted")

    if "mosquitto" not in args.skip:
        with mosquitto(work) as (port, pid):
            meter = Meter({}, {"mosquitto": pid} if pid else {})
            results["e"] = await measure("e mosquitto", [port], [port], meter, args)

    if "workers" not in args.skip:
        for label, key, workers in (
            ("d1 serve, 1 process", "d1", 1),
            ("d serve --workers 2", "d", 2),
        ):
            (port,) = free_ports(1)
            proc = WorkersProcess(work / f"serve-{workers}", env=tcp_env(port), workers=workers)
            if workers == 1:
                proc = LanternProcess(work / "serve-1", env=tcp_env(port))
            with started(proc):
                wait_for_port(port, 30)
                assert proc.proc is not None
                embedded = proc.proc.pid if workers > 1 else None
                meter = Meter({"serve": proc.proc.pid}, embedded_nats_in=embedded)
                results[key] = await measure(label, [port], [port], meter, args)

    if cluster is not None:
        a = cluster.add()
        results["a"] = await measure(
            "a 1 node", [a.tcp_port], [a.tcp_port], cluster.meter(nats_pid), args
        )
        b = cluster.add()
        results["b"] = await measure(
            "b 2 nodes, cross-node", [a.tcp_port], [b.tcp_port], cluster.meter(nats_pid), args
        )
        c = cluster.add()
        results["c"] = await measure(
            "c 3 nodes, node2 idle", [a.tcp_port], [b.tcp_port], cluster.meter(nats_pid), args
        )
        if args.devices:
            c.proc.stop(timeout=30)
            cluster.nodes.remove(c)
            await failover(cluster, b, args)
    print_ratios(results)


def print_ratios(r: dict[str, Result]) -> None:
    print("\nsummary (CPU per message summed over Lantern processes and NATS)")
    print(
        f"{'scenario':<26} {'msgs/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/msg':>10} "
        f"{'of it NATS':>10} {'generator':>9}"
    )
    for res in r.values():
        print(
            f"{res.label:<26} {res.rate:>9,.0f} {res.p50:>7.1f} {res.p99:>7.1f} "
            f"{us(res.total_per_msg):>10} {us(res.nats_per_msg):>10} "
            f"{res.generator_cpu / res.elapsed:>8.0%}"
        )
    if "a" in r and "b" in r:
        print(
            f"cross-node / same-node CPU per message: "
            f"{r['b'].total_per_msg / r['a'].total_per_msg:.2f} (goal <= 1.5)"
        )
    if "b" in r and "c" in r and "node2" in r["c"].cpu:
        print(
            f"third node without subscribers: {us(r['c'].per_msg('node2'))} us/msg on node2 "
            f"({us(r['c'].above_idle_per_msg('node2'))} above its idle CPU); "
            f"cluster total {us(r['c'].total_per_msg)} vs {us(r['b'].total_per_msg)} us/msg "
            "with two nodes (goal: no measurable difference)"
        )
    if "d" in r and "d1" in r:
        print(
            f"--workers 2 / one process saturation: {r['d'].rate / r['d1'].rate:.2f} "
            f"(goal >= 1.5 on two cores; {os.cpu_count()} CPUs here)"
        )
    if "a" in r and "e" in r:
        print(f"mosquitto / one node saturation: {r['e'].rate / r['a'].rate:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts (checks the script works)")
    ap.add_argument("--duration", type=float, help="seconds per phase (default 10, quick 1)")
    ap.add_argument("--rate", type=float, help="paced load, msgs/s in total (default 1000)")
    ap.add_argument("--devices", type=int, help="devices for the failover (default 1000)")
    ap.add_argument("--pairs", type=int, default=8, help="publisher/subscriber pairs")
    ap.add_argument("--window", type=int, default=20, help="messages in flight per pair")
    ap.add_argument("--failover-timeout", type=float, default=60.0)
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["mosquitto", "workers", "cluster"],
        help="leave a group of targets out (repeatable)",
    )
    ns = ap.parse_args()
    args = Args(
        duration=ns.duration or (1.0 if ns.quick else 10.0),
        rate=ns.rate or (200.0 if ns.quick else 1000.0),
        devices=ns.devices if ns.devices is not None else (50 if ns.quick else 1000),
        pairs=4 if ns.quick and ns.pairs == 8 else ns.pairs,
        window=ns.window,
        failover_timeout=ns.failover_timeout,
        skip=set(ns.skip),
    )
    raise_fd_limit()
    import uvloop

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, ExitStack() as stack:
        # The database and S3 are set up before the event loop (their helpers run their own).
        cluster = None if "cluster" in args.skip else Cluster(stack, Path(tmp) / "cluster")
        uvloop.run(run(args, Path(tmp), cluster))


if __name__ == "__main__":
    main()
