"""Slow and idle clients against a real ``lantern serve`` over raw sockets: requests that never
finish are closed after ``http.request_read_timeout`` (408), the HTTP listener's connection cap
holds, and under a low file descriptor limit a flood of one listener leaves room for the other
(mTLS MQTT keeps connecting while HTTP is flooded, /healthz keeps answering while MQTT is)."""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hardening_kit import claim_files

from support.mqtt_server import Client, ClientFiles
from support.net import free_port
from support.process import LanternProcess

TIMEOUT = 1.5


def mqtt_connects(server: LanternProcess, files: ClientFiles) -> bool:
    """An mTLS MQTT connection with a claim certificate gets a successful CONNACK."""
    client = Client(server.mqtt_port, files, "claim-probe")
    try:
        client.connect()
    except Exception:
        return False
    client.stop()
    return True


def open_sockets(port: int, count: int, first: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first:
            sock.sendall(first)
        sockets.append(sock)
    return sockets


def read_until_closed(sockets: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """What each socket received until the server closed it; raises if any stays open."""
    received = {s: b"" for s in sockets}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + within
    open_count = len(sockets)
    while open_count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            except BlockingIOError:
                continue
            if data:
                received[sock] += data
            else:
                selector.unregister(sock)
                open_count -= 1
    selector.close()
    assert open_count == 0, f"{open_count} of {len(sockets)} connections still open"
    return received


@contextmanager
def closing(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_unfinished_requests_are_closed_after_the_read_timeout(tmp_path: Path) -> None:
    ws_port = free_port()
    env = {
        "LANTERN_HTTP__REQUEST_READ_TIMEOUT": str(TIMEOUT),
        "LANTERN_MQTT__WS_PORT": str(ws_port),
        "LANTERN_MQTT__HANDSHAKE_TIMEOUT": str(TIMEOUT),
    }
    with LanternProcess(tmp_path / "data", env=env) as server:
        files = claim_files(server, tmp_path / "claim")
        port = server.http_port
        started = time.monotonic()
        silent = open_sockets(port, 50)
        headers = open_sockets(port, 100, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        body = open_sockets(
            port, 50, b'POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"'
        )
        # A keep-alive connection: one answered request, then a next one that never ends.
        kept = socket.create_connection(("127.0.0.1", port), timeout=5)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole first response (headers, then JSON)
            first += kept.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /healthz HTTP/1.1\r\n")
        upgrades = open_sockets(ws_port, 20, b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: web")
        everything = [*silent, *headers, *body, kept, *upgrades]
        with closing(everything):
            # Meanwhile the server serves: HTTP and an mTLS MQTT connection.
            assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200
            assert mqtt_connects(server, files)
            for sock in headers[:20]:  # a byte now and then does not extend the deadline
                with contextlib.suppress(OSError):  # (already closed on a very slow machine)
                    sock.sendall(b"a")
            received = read_until_closed(everything, within=TIMEOUT + 5)
            elapsed = time.monotonic() - started
        assert elapsed >= TIMEOUT - 0.1
        for sock in [*silent, *headers, *body, kept]:
            assert received[sock].startswith(b"HTTP/1.1 408"), received[sock][:100]
            assert b'"code":"request_timeout"' in received[sock]
        assert all(received[sock] == b"" for sock in upgrades)
        assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200


def healthz_recovers(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    """/healthz answers 200 within two seconds."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, verify=verify, timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def banner(server: LanternProcess) -> str:
    """The startup banner (printed just after /healthz starts answering)."""
    deadline = time.monotonic() + 10
    while "Stop with Ctrl-C." not in server.current_output():
        assert time.monotonic() < deadline, server.current_output()
        time.sleep(0.05)
    return server.current_output()


def caps_from_banner(output: str) -> tuple[int, int]:
    found = re.search(r"mqtts (\d+), mqtt.max_connections .*; http (\d+), http.max", output)
    assert found is not None, output
    return int(found.group(1)), int(found.group(2))


def test_one_flooded_listener_leaves_room_for_the_other(tmp_path: Path) -> None:
    limit = 384
    env = {"LANTERN_HTTP__REQUEST_READ_TIMEOUT": "30", "LANTERN_MQTT__HANDSHAKE_TIMEOUT": "30"}
    with LanternProcess(tmp_path / "data", env=env, nofile=limit) as server:
        files = claim_files(server, tmp_path / "claim")
        printed = banner(server)
        assert f"descriptors      limit {limit}," in printed
        mqtt_cap, http_cap = caps_from_banner(printed)
        assert 16 <= http_cap < mqtt_cap and 2 * http_cap + mqtt_cap < limit
        flood = limit + 50  # more than the whole process could hold

        # HTTP flooded with idle connections: those over the cap get 503 and are closed.
        with closing(open_sockets(server.http_port, flood)) as idle:
            assert mqtt_connects(server, files)
            answers = read_until_closed(idle[http_cap:], within=10)
            assert all(a.startswith(b"HTTP/1.1 503") for a in answers.values())
            full = httpx.get(f"{server.http_url}/healthz", timeout=5)
            assert full.status_code == 503 and full.json()["code"] == "too_many_connections"
        assert healthz_recovers(f"{server.http_url}/healthz")

        # MQTT flooded with connections that never start TLS: HTTP and MQTT still serve.
        with closing(open_sockets(server.mqtt_port, flood)) as idle:
            read_until_closed(idle[mqtt_cap:], within=10)
            assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200
        assert mqtt_connects(server, files)


def test_http_cap_and_tls_handshake_timeout(tmp_path: Path) -> None:
    env = {
        "LANTERN_HTTP__TLS": "true",
        "LANTERN_HTTP__MAX_CONNECTIONS": "30",
        "LANTERN_HTTP__REQUEST_READ_TIMEOUT": str(TIMEOUT),
    }
    with LanternProcess(tmp_path / "data", env=env) as server:
        assert "HTTP limits      30 connections, requests read within 1.5 s" in banner(server)
        context = server.http_verify()
        assert isinstance(context, ssl.SSLContext)
        url = f"{server.http_url}/healthz"
        with closing(open_sockets(server.http_port, 40)) as idle:  # no ClientHello ever
            refused = read_until_closed(idle[30:], within=5)  # over the cap: closed at once
            assert all(r == b"" for r in refused.values())
            with pytest.raises(httpx.HTTPError):
                httpx.get(url, verify=context, timeout=5)
            read_until_closed(idle[:30], within=TIMEOUT + 5)  # handshake timed out
        # Their slots are free again (released a loop turn after the sockets closed).
        assert healthz_recovers(url, context)
        raw = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
        slow = context.wrap_socket(raw, server_hostname="127.0.0.1")
        with closing([slow]):
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.settimeout(TIMEOUT + 5)
            assert slow.recv(4096).startswith(b"HTTP/1.1 408")


def test_explicit_caps_that_do_not_fit_stop_startup(tmp_path: Path) -> None:
    server = LanternProcess(tmp_path / "data", nofile=384)
    env = {**server.command_env(), "LANTERN_MQTT__MAX_CONNECTIONS": "1000"}
    done = subprocess.run(server.command(), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "mqtt.max_connections = 1000 need 1000 file descriptors" in done.stdout + done.stderr
