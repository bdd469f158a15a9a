"""Quick load and memory probe of Lantern's MQTT server core (a script, not a test).

Runs ``lantern.mqtt.server.MQTTServer`` alone (no gateway, no database) in a child process on a
plain TCP loopback port, or targets any broker already listening (``--port``, e.g. a
``mosquitto -p N``), and drives it from this process with raw-socket MQTT 3.1.1 clients:

    python bench/mqtt_profile.py throughput [--scenarios p2p0,p2p1,fan0,fan1] [--duration 3]
                                            [--profile server.prof] [--port N]
    python bench/mqtt_profile.py memory [--connections 2000]

``throughput`` reports saturation: messages delivered to subscribers per second while the
publishers keep a bounded number of messages in flight (sent, not yet delivered), and the server
process's CPU seconds per 1k deliveries. Scenarios: ``p2p`` = 10 publisher/subscriber pairs,
``fan`` = 1 publisher -> 1000 subscribers; the digit is the QoS (64-byte payloads).
``--profile`` runs the server under cProfile and writes the stats there on exit.

``memory`` opens N idle connections (CONNECT, CONNACK, then nothing) and reports the server's
RSS growth per connection and tracemalloc's count of Python heap bytes per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = bytes(64)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- MQTT 3.1.1 packets the probe needs ------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    raw = s.encode()
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str) -> bytes:
    return _packet(0x10, _str("MQTT") + b"\x04\x02\x00\x00" + _str(client_id))


def subscribe_packet(topic: str, qos: int) -> bytes:
    return _packet(0x82, b"\x00\x01" + _str(topic) + bytes([qos]))


def publish_packets(topic: str, qos: int, first_pid: int, count: int) -> bytes:
    if not qos:
        return _packet(0x30, _str(topic) + PAYLOAD) * count
    parts = []
    for i in range(count):
        pid = (first_pid + i) % 65535 + 1
        parts.append(_packet(0x32, _str(topic) + pid.to_bytes(2, "big") + PAYLOAD))
    return b"".join(parts)


class Client(asyncio.Protocol):
    """Counts PUBLISHes (answering QoS 1 with PUBACK) and PUBACKs; CONNACK/SUBACK set events."""

    def __init__(self, counters: list[int]) -> None:
        self.counters = counters  # [publishes received (all clients), pubacks received]
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.connack = asyncio.Event()
        self.suback = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.acked = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, size = 0, len(buf)
        acks = []
        received = 0
        while size - pos >= 2:
            length, shift, i = 0, 0, pos + 1
            while i < size:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            else:
                break
            end = i + length
            if end > size:
                break
            kind = buf[pos] >> 4
            if kind == 3:
                received += 1
                if buf[pos] & 0x06:
                    tlen = (buf[i] << 8) | buf[i + 1]
                    acks.append(b"\x40\x02" + buf[i + 2 + tlen : i + 4 + tlen])
            elif kind == 4:
                self.acked += 1
            elif kind == 2:
                self.connack.set()
            elif kind == 9:
                self.suback.set()
            pos = end
        self.buf = buf[pos:]
        self.counters[0] += received
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.writable.set()


async def open_client(port: int, client_id: str, counters: list[int]) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(counters), "127.0.0.1", port)
    assert client.transport is not None
    client.transport.write(connect_packet(client_id))
    await asyncio.wait_for(client.connack.wait(), 30)
    return client


# -- throughput --------------------------------------------------------------------------------


async def saturate(port: int, scenario: str, duration: float, server_pid: int | None) -> str:
    qos = int(scenario[-1])
    fanout = scenario.startswith("fan")
    counters = [0, 0]
    tag = f"{scenario}-{os.getpid()}-{time.monotonic_ns()}"
    topics = [f"bench/{tag}"] if fanout else [f"bench/{tag}/{i}" for i in range(10)]
    subs: list[Client] = []
    for i in range(1000 if fanout else 10):
        sub = await open_client(port, f"s-{tag}-{i}", counters)
        assert sub.transport is not None
        sub.transport.write(subscribe_packet(topics[0] if fanout else topics[i], qos))
        subs.append(sub)
    await asyncio.gather(*(asyncio.wait_for(s.suback.wait(), 30) for s in subs))
    pubs = [await open_client(port, f"p-{tag}-{i}", [0, 0]) for i in range(len(topics))]
    per_msg = 1000 if fanout else 1
    # Messages in flight (sent, not delivered) and, for QoS 1, unacknowledged PUBLISHes per
    # publisher: bounded so the server never queues without limit (Lantern's Receive Maximum
    # is 100).
    window = 100 if fanout else 2000
    sent = [0] * len(pubs)
    start = time.monotonic()
    cpu0 = _cpu(server_pid)
    warm_until = start + min(1.0, duration / 3)
    t0 = d0 = c0 = None
    while True:
        now = time.monotonic()
        if t0 is None and now >= warm_until:
            t0, d0, c0 = now, counters[0], _cpu(server_pid)
        if now - start >= duration:
            break
        in_flight = sum(sent) - counters[0] // per_msg
        budget = window - in_flight
        for i, pub in enumerate(pubs):
            share = budget // len(pubs)
            if qos:
                share = min(share, 100 - (sent[i] - pub.acked))
            share = min(share, 64)
            if share > 0 and pub.transport is not None and pub.writable.is_set():
                pub.transport.write(publish_packets(topics[i], qos, sent[i], share))
                sent[i] += share
        await asyncio.sleep(0)
    t1, d1, c1 = time.monotonic(), counters[0], _cpu(server_pid)
    assert t0 is not None and d0 is not None and c0 is not None
    rate = (d1 - d0) / (t1 - t0)
    cpu = ""
    if server_pid is not None and d1 > d0:
        cpu = f"  server CPU {1000 * (c1 - c0) / ((d1 - d0) / 1000):6.1f} ms/1k msgs"
    for client in subs + pubs:
        if client.transport is not None:
            client.transport.write(b"\xe0\x00")
            client.transport.close()
    del cpu0
    return f"{scenario:5s} {rate:10.0f} msgs/s delivered{cpu}"


def _cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- memory ------------------------------------------------------------------------------------


async def idle_memory(port: int, n: int, server: subprocess.Popen[bytes], report: Path) -> str:
    counters = [0, 0]

    def traced() -> int:
        report.unlink(missing_ok=True)
        server.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not report.exists() or not report.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("server did not report tracemalloc figures")
            time.sleep(0.01)
        return int(report.read_text())

    # Warm up (first connection imports and caches), then measure N more.
    warm = [await open_client(port, f"warm-{i}", counters) for i in range(20)]
    await asyncio.sleep(0.5)
    rss0, heap0 = _rss(server.pid), traced()
    clients = []
    for start in range(0, n, 200):
        batch = [
            open_client(port, f"idle-{i}", counters) for i in range(start, min(n, start + 200))
        ]
        clients.extend(await asyncio.gather(*batch))
    await asyncio.sleep(1.0)
    rss1, heap1 = _rss(server.pid), traced()
    for client in clients + warm:
        if client.transport is not None:
            client.transport.close()
    return (
        f"{n} idle plain-TCP connections: RSS +{(rss1 - rss0) / n / 1024:.1f} KiB/conn, "
        f"Python heap (tracemalloc) +{(heap1 - heap0) / n / 1024:.2f} KiB/conn"
    )


# -- the server child process ------------------------------------------------------------------


def serve(port_file: Path, profile: str | None, report: str | None) -> None:
    from lantern.mqtt.hooks import AllowAllAuthenticator, AllowAllAuthorizer
    from lantern.mqtt.server import MQTTServer, MQTTServerConfig

    if report is not None:
        import tracemalloc

        tracemalloc.start()
        first: list[tracemalloc.Snapshot] = []

        def dump(*_: object) -> None:
            # The second report also lists where the heap grew (to stderr).
            snapshot = tracemalloc.take_snapshot()
            if first:
                for stat in snapshot.compare_to(first[0], "lineno")[:15]:
                    print(f"  {stat}", file=sys.stderr)
            else:
                first.append(snapshot)
            Path(report).write_text(str(tracemalloc.get_traced_memory()[0]))

        signal.signal(signal.SIGUSR1, dump)

    async def main() -> None:
        cfg = MQTTServerConfig(host="127.0.0.1", tls_port=None, tcp_port=0)
        server = MQTTServer(cfg, AllowAllAuthenticator(), AllowAllAuthorizer())
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        port_file.write_text(str(server.ports["tcp"]))
        await stop.wait()
        await server.stop(timeout=2)

    if profile is None:
        asyncio.run(main())
        return
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        asyncio.run(main())
    finally:
        prof.disable()
        prof.dump_stats(profile)


def start_server(
    tmp: Path, profile: str | None, report: Path | None
) -> tuple[subprocess.Popen[bytes], int]:
    port_file = tmp / "port"
    cmd = [sys.executable, __file__, "_serve", "--port-file", str(port_file)]
    if profile:
        cmd += ["--profile", profile]
    if report:
        cmd += ["--report", str(report)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["throughput", "memory", "_serve"])
    parser.add_argument("--scenarios", default="p2p0,p2p1,fan0,fan1")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--port", type=int, help="drive a broker already listening here")
    parser.add_argument("--pid", type=int, help="that broker's pid (for its CPU figures)")
    parser.add_argument("--profile", help="cProfile the server, stats to this file")
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "_serve":
        serve(Path(args.port_file), args.profile, args.report)
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        report = tmp / "heap" if args.mode == "memory" else None
        server: subprocess.Popen[bytes] | None = None
        if args.port is None:
            server, port = start_server(tmp, args.profile, report)
            pid: int | None = server.pid
        else:
            port, pid = args.port, args.pid
        try:
            if args.mode == "memory":
                assert server is not None and report is not None, "memory needs our own server"
                print(asyncio.run(idle_memory(port, args.connections, server, report)))
            else:
                for scenario in args.scenarios.split(","):
                    print(asyncio.run(saturate(port, scenario, args.duration, pid)), flush=True)
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)


if __name__ == "__main__":
    main()
