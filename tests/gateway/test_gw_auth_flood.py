"""A flood of wrong MQTT passwords against `lantern serve` costs a bounded amount of CPU, and a
legitimate user still connects (attack matrix: 597 wrong passwords in 10 s cost 17 CPU-s)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from pathlib import Path

import httpx

from lantern.gateway.accounts import create_mqtt_user
from lantern.gateway.passwords import hash_password, verify_password
from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.packets import Connack, Connect
from lantern.store import Database
from support.net import free_port
from support.process import LanternProcess

ATTEMPTS = 200
ATTACKER = "127.0.0.2"  # loopback accepts any 127.x source address
PER_ADDRESS = 30  # the default provisioning.auth_max_failures_per_address


def connack(port: int, user: str, password: str, *, source: str, level: int = 5) -> int:
    """CONNECT with ``user``/``password`` from ``source``; the CONNACK's code."""
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(encode(Connect("c", level, username=user, password=password.encode()), level))
        decoder = Decoder(1024, protocol_level=level, expect_connect=False)
        while True:
            packet = decoder.next_packet()
            if packet is not None:
                assert isinstance(packet, Connack)
                return int(packet.reason_code)
            data = sock.recv(1024)
            assert data, "closed without CONNACK"
            decoder.feed(data)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrypt_seconds() -> float:
    """CPU of one password check on this machine (the bound scales with it)."""
    stored = hash_password("x")
    started = time.process_time()
    for _ in range(3):
        verify_password("y", stored)
    return (time.process_time() - started) / 3


async def add_user(data_dir: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}")
    try:
        await create_mqtt_user(db, "dash", "the-right-password")
    finally:
        await db.close()


def test_password_flood_is_throttled_and_a_legitimate_user_still_connects(
    data_dir: Path,
) -> None:
    tcp_port = free_port()
    env = {
        "LANTERN_MQTT__TCP_PORT": str(tcp_port),
        "LANTERN_PROVISIONING__KEY_POOL_SIZE": "0",
    }
    check = scrypt_seconds()
    with LanternProcess(data_dir, env=env) as proc:
        assert proc.proc is not None
        asyncio.run(add_user(data_dir))
        cpu_before = cpu_seconds(proc.proc.pid)
        started = time.monotonic()
        # A different (unknown) user name each time: only the per-address limit can help.
        codes = [connack(tcp_port, f"guess-{i}", "wrong", source=ATTACKER) for i in range(ATTEMPTS)]
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(proc.proc.pid) - cpu_before
        bound = (PER_ADDRESS + 10) * check + 1.0
        print(
            f"{ATTEMPTS} wrong passwords in {elapsed:.1f} s: server CPU {cpu:.2f} s "
            f"(one check {check * 1000:.0f} ms; bound {bound:.2f} s; unthrottled about "
            f"{ATTEMPTS * check:.1f} s)"
        )
        assert codes[:PER_ADDRESS] == [0x86] * PER_ADDRESS
        assert codes[PER_ADDRESS:] == [0x8A] * (ATTEMPTS - PER_ADDRESS)
        assert cpu < bound
        # The attacker's address is refused even with the right password (3.1.1: code 5);
        # the user connects from elsewhere.
        assert connack(tcp_port, "dash", "the-right-password", source=ATTACKER) == 0x8A
        # (3.1.1 return code 5, which the decoder reads as 0x87)
        assert connack(tcp_port, "dash", "the-right-password", source=ATTACKER, level=4) == 0x87
        assert connack(tcp_port, "dash", "the-right-password", source="127.0.0.1") == 0
        metrics = httpx.get(f"{proc.http_url}/metrics").text
        assert re.search(r'lantern_mqtt_auth_failures_total\{reason="password"\} 30\.0', metrics)
        assert re.search(r'lantern_mqtt_auth_throttled_total\{scope="address"\} 172\.0', metrics)
