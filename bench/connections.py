"""Connection capacity of one node: idle MQTT connections held, RSS per connection, CPU at idle.

Not a test. Lantern (``lantern serve`` on the embedded default) and Mosquitto for reference, one
after the other, each a fresh process per size, started by this script on free loopback ports:

- ``--clients`` processes open N mTLS connections in total (EC P-256 client certificate, MQTT
  3.1.1 CONNECT with keep-alive ``--keepalive`` seconds, CONNACK awaited), as devices do;
- every connection sends PINGREQ one keep-alive period after its CONNECT and every period after
  that, during the connect phase too (which may last longer than a keep-alive period); the
  connections are held for ``--hold`` seconds after the last one is accepted: N / keep-alive
  pings per second in all, the steady state of an idle fleet;
- printed: connections accepted, connects/s, server RSS before and after and (after - before) / N
  per connection, the server's CPU (utime+stime, all its threads) at idle before any connection
  and during the hold, as % of one core, PINGRESPs received against PINGREQs sent.

The connections are opened from the same 2-core machine: the client processes' TLS handshakes
share the CPUs with the server, so connects/s is a lower bound. The file descriptor limit is
raised to the hard limit; sizes above it (less a margin) are skipped and said so.

    .venv/bin/python bench/connections.py                      # 1,000 and 10,000 connections
    .venv/bin/python bench/connections.py --sizes 1000,19000 --hold 30
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import selectors
import shutil
import socket
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mqtt import (
    CONNACK_LEN,
    Certs,
    Target,
    connect_packet,
    cpu_seconds,
    issue_client_cert,
    lantern,
    mosquitto,
    raise_fd_limit,
    rss_bytes,
)

PINGREQ = b"\xc0\x00"
PINGRESP_LEN = 2


def hold_client(
    port: int, n: int, prefix: str, keepalive: int, certs: Certs, conn: Connection
) -> None:
    """Child process: open ``n`` mTLS MQTT connections, report, hold them until told to close.

    Each connection sends PINGREQ ``keepalive`` seconds after its CONNECT and then every
    ``keepalive`` seconds (as a client library does on an idle connection), from the moment it
    is accepted: the connect phase may last longer than the keep-alive."""
    raise_fd_limit()
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    ctx.load_cert_chain(certs.client_cert, certs.client_key)
    sel = selectors.DefaultSelector()
    done: list[ssl.SSLSocket] = []
    due: deque[tuple[float, ssl.SSLSocket]] = deque()  # due times grow along the deque
    counts = {"sent": 0, "received": 0, "lost": 0}

    def ping_due() -> None:
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, s = due.popleft()
            try:
                s.send(PINGREQ)
                counts["sent"] += 1
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except OSError:
                continue  # closed: no more pings
            due.append((at + keepalive, s))

    started = failed = in_progress = 0
    deadline = time.monotonic() + max(120.0, n / 20)
    while len(done) + failed < n and time.monotonic() < deadline:
        while started < n and in_progress < 64:
            raw = socket.socket()
            raw.setblocking(False)
            s = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
            s.connect_ex(("127.0.0.1", port))
            packet = connect_packet(f"{prefix}-{started}", keepalive)
            sel.register(s, selectors.EVENT_WRITE, ["handshake", packet, b"", 0.0])
            started += 1
            in_progress += 1
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj  # type: ignore[assignment]
            state = key.data
            try:
                if state[0] == "handshake":
                    s.do_handshake()
                    s.send(state[1])
                    state[3] = time.monotonic()
                    state[0] = "reply"
                    sel.modify(s, selectors.EVENT_READ, state)
                else:
                    state[2] += s.recv(16)
                    if len(state[2]) >= CONNACK_LEN:
                        sel.unregister(s)
                        in_progress -= 1
                        if state[2][3] == 0:
                            done.append(s)
                            due.append((state[3] + keepalive, s))
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
        ping_due()
    sel.close()
    conn.send(("ready", len(done), failed))
    sent_before_hold = counts["sent"]
    reader = selectors.DefaultSelector()
    for s in done:
        reader.register(s, selectors.EVENT_READ)
    while not conn.poll():  # until "stop"
        ping_due()
        for key, _ in reader.select(timeout=0.05):
            s = key.fileobj  # type: ignore[assignment]
            try:
                data = s.recv(4096)
            except ssl.SSLWantReadError:
                continue
            except OSError:
                data = b""
            if not data:
                reader.unregister(s)
                counts["lost"] += 1
                continue
            counts["received"] += len(data) // PINGRESP_LEN
    conn.recv()  # "stop"
    reader.close()
    for s in done:
        s.close()
    hold_sent = counts["sent"] - sent_before_hold
    conn.send(("closed", counts["sent"], counts["received"], counts["lost"], hold_sent))


def measure(target: Target, certs: Certs, n: int, args: argparse.Namespace) -> dict[str, Any]:
    time.sleep(5.0)  # the server settles after start (migrations, key pool, first heartbeats)
    idle_cpu0, idle_t0 = cpu_seconds(target.pid), time.monotonic()
    time.sleep(args.baseline)
    idle_pct = (cpu_seconds(target.pid) - idle_cpu0) / (time.monotonic() - idle_t0)
    before = rss_bytes(target.pid)
    ctx = mp.get_context("fork")
    pipes: list[Connection] = []
    procs = []
    share = [n // args.clients + (1 if i < n % args.clients else 0) for i in range(args.clients)]
    t0 = time.monotonic()
    for i, k in enumerate(share):
        parent, child = ctx.Pipe()
        p = ctx.Process(
            target=hold_client,
            args=(target.tls_port, k, f"hold{i}", args.keepalive, certs, child),
        )
        p.start()
        pipes.append(parent)
        procs.append(p)
    ok = failed = 0
    for parent in pipes:
        _, k_ok, k_failed = parent.recv()
        ok, failed = ok + k_ok, failed + k_failed
    connect_s = time.monotonic() - t0
    time.sleep(1.0)  # let the server finish any work following the last CONNACK
    after = rss_bytes(target.pid)
    cpu0, h0 = cpu_seconds(target.pid), time.monotonic()
    time.sleep(args.hold)
    hold_pct = (cpu_seconds(target.pid) - cpu0) / (time.monotonic() - h0)
    rss_end = rss_bytes(target.pid)
    sent = received = lost = hold_sent = 0
    for parent in pipes:
        parent.send("stop")
        _, k_sent, k_received, k_lost, k_hold = parent.recv()
        sent, received, lost = sent + k_sent, received + k_received, lost + k_lost
        hold_sent += k_hold
    for p in procs:
        p.join()
    return {
        "n": n,
        "ok": ok,
        "failed": failed,
        "connect_rate": ok / connect_s if connect_s else 0.0,
        "before": before,
        "after": after,
        "rss_end": rss_end,
        "per_conn": (after - before) / max(ok, 1),
        "idle_pct": idle_pct,
        "hold_pct": hold_pct,
        "pings_sent": sent,
        "hold_pings_per_s": hold_sent / args.hold,
        "pings_answered": received,
        "closed_by_server": lost,
    }


def fmt(name: str, m: dict[str, Any]) -> str:
    return (
        f"[{name}] {m['n']:>6} conns: {m['ok']} ok, {m['failed']} failed, "
        f"{m['connect_rate']:.0f} conn/s; RSS {m['before'] / 2**20:.0f} -> "
        f"{m['after'] / 2**20:.0f} MiB ({m['rss_end'] / 2**20:.0f} MiB after the hold) = "
        f"{m['per_conn'] / 1024:.1f} KiB/conn; CPU idle {m['idle_pct']:.1%} of a core, "
        f"holding {m['hold_pct']:.1%} ({m['hold_pings_per_s']:.0f} PINGREQ/s); "
        f"PINGREQ {m['pings_sent']} / PINGRESP "
        f"{m['pings_answered']}; {m['closed_by_server']} closed by the server"
    )


@contextlib.contextmanager
def start(name: str, work: Path, n: int) -> Iterator[tuple[Target, Certs] | str]:
    """A fresh Mosquitto or Lantern able to hold ``n`` connections on its mTLS listener.

    Lantern shares its file descriptors between its listeners (``lantern.runtime.fdlimits``):
    it runs here without the plain TCP listener and with HTTP capped at 64 connections, so the
    mTLS listener gets nearly all of them."""
    if name == "lantern":
        extra = {"LANTERN_HTTP__MAX_CONNECTIONS": "64"}
        with lantern(work, tcp=False, extra_env=extra) as started:
            yield started
        return
    certs = issue_client_cert(work / "bench-ca", work)
    with mosquitto(work, certs) as started_mosquitto:
        yield (
            started_mosquitto if isinstance(started_mosquitto, str) else (started_mosquitto, certs)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000", help="connection counts, comma-separated")
    ap.add_argument("--keepalive", type=int, default=60, help="MQTT keep-alive, seconds")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds connections are held")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of idle CPU measured")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--skip-mosquitto", action="store_true")
    ap.add_argument("--skip-lantern", action="store_true")
    args = ap.parse_args()
    fd_limit = raise_fd_limit()
    sizes = [int(s) for s in args.sizes.split(",")]
    for n in sizes:
        if n + 200 > fd_limit:
            print(f"size {n} skipped: fd limit {fd_limit} (the server needs one per connection)")
    sizes = [n for n in sizes if n + 200 <= fd_limit]
    work = Path(tempfile.mkdtemp(prefix="lantern-bench-"))
    results: dict[str, list[dict[str, Any]]] = {}
    started = time.monotonic()
    try:
        for name in ("mosquitto", "lantern"):
            if getattr(args, f"skip_{name}"):
                continue
            for n in sizes:
                with start(name, work, n) as started_target:
                    if isinstance(started_target, str):
                        print(f"[{name}] skipped: {started_target}", flush=True)
                        break
                    target, certs = started_target
                    m = measure(target, certs, n, args)
                    print(fmt(name, m), flush=True)
                    results.setdefault(name, []).append(m)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n== summary (keep-alive {args.keepalive} s, hold {args.hold:.0f} s) ==")
    head = ("broker", "conns", "KiB/conn", "conn/s", "idle CPU", "held CPU")
    print(f"{head[0]:<10} {head[1]:>7} {head[2]:>9} {head[3]:>7} {head[4]:>9} {head[5]:>9}")
    for name, runs in results.items():
        for m in runs:
            print(
                f"{name:<10} {m['ok']:>7} {m['per_conn'] / 1024:>9.1f} {m['connect_rate']:>7.0f}"
                f" {m['idle_pct']:>9.1%} {m['hold_pct']:>9.1%}"
            )
    print(f"(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
