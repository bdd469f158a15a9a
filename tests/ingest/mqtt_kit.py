"""Helpers of the end-to-end ingest tests: provision a device against a real ``lantern serve``,
read what the server committed (its SQLite file read-only, or its PostgreSQL database), a paho
client that records PUBACKs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from support.postgres import fresh_postgres_database
from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

WAIT = 20.0


def create_claim(server: LanternProcess, out: Path) -> Claim:
    done = lantern_cli(
        server, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    return Claim(cert, cert.with_suffix(".key"), out / "ca.pem")


@dataclass(frozen=True)
class Device:
    name: str
    cert: Path
    key: Path
    ca: Path
    certs_dir: Path


def new_device(server: LanternProcess, claim: Claim, certs_dir: Path, serial: str) -> Device:
    """Provision a device over MQTT with the claim, as `lantern device provision` does, and put
    the CA beside its certificate and key."""
    result, files = provision_device(server, claim, certs_dir, serial)
    ca = certs_dir / "ca.pem"
    ca.write_bytes(claim.ca.read_bytes())
    return Device(result.thing_name, files.cert, files.key, ca, certs_dir)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for a module-scoped (synchronous) fixture."""
    urls: queue.Queue[str | BaseException] = queue.Queue()
    release = threading.Event()

    async def hold() -> None:
        try:
            async with fresh_postgres_database() as url:
                urls.put(url)
                await asyncio.to_thread(release.wait)
        except BaseException as exc:  # e.g. pytest's skip when no server answers
            urls.put(exc)

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        url = urls.get(timeout=30)
        if isinstance(url, BaseException):
            raise url
        yield url
    finally:
        release.set()
        holder.join(60)


def stored_db(server: LanternProcess) -> Path | str:
    """Where ``server`` stores: its PostgreSQL URL (``LANTERN_DATABASE_URL``) or SQLite file."""
    return server.env.get("LANTERN_DATABASE_URL") or server.data_dir / "lantern.db"


def _query(db: Path | str, sql: str, thing: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (one parameter: the thing name) on committed data, read-only."""
    if isinstance(db, Path):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql.replace("$1", "?"), (thing,)).fetchall()
        finally:
            conn.close()

    async def fetch() -> list[tuple[Any, ...]]:
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return [tuple(r) for r in await conn.fetch(sql, thing)]
        finally:
            await conn.close()

    # Called from test code and from paho's callback thread: a loop of its own either way.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, fetch()).result()


def _execute(db: Path | str, sql: str) -> None:
    """Run one statement (DDL) on the server's database beside the running server."""
    if isinstance(db, Path):
        conn = sqlite3.connect(db, timeout=10)
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return

    async def run() -> None:
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def observations_refused(db: Path | str) -> Iterator[None]:
    """While inside, every INSERT into ``observations`` fails (a trigger on SQLite, a CHECK
    constraint on PostgreSQL): each transaction of the server's observation writer fails."""
    if isinstance(db, Path):
        _execute(
            db,
            "CREATE TRIGGER test_refuse BEFORE INSERT ON observations "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        undo = "DROP TRIGGER test_refuse"
    else:
        _execute(db, "ALTER TABLE observations ADD CONSTRAINT test_refuse CHECK (false) NOT VALID")
        undo = "ALTER TABLE observations DROP CONSTRAINT test_refuse"
    try:
        yield
    finally:
        _execute(db, undo)


def stored_patient_ids(db: Path | str, thing: str) -> set[str]:
    """Patient ids of the observations the server has committed for ``thing``."""
    rows = _query(db, "SELECT patient_id FROM observations WHERE thing_name = $1", thing)
    return {r[0] for r in rows if r[0] is not None}


def count_for_thing(db: Path | str, thing: str) -> int:
    return int(_query(db, "SELECT count(*) FROM observations WHERE thing_name = $1", thing)[0][0])


def observation(value: object = "98", patient: str | None = None) -> bytes:
    body: dict[str, Any] = {
        "value": value,
        "unit": "%",
        "coding": [
            {
                "code": "9750d5e5-d766-4793-a97d-16179578cc4d",
                "system": "http://lifeomic.com/fhir/devices",
                "display": "Battery Percentage",
            }
        ],
    }
    if patient is not None:
        body["patientId"] = patient
    return json.dumps(body).encode()


@dataclass
class DeviceConnection:
    """A paho-mqtt connection as ``device``; ``on_puback(mid, reason)`` runs in paho's thread
    at the moment the PUBACK is processed."""

    port: int
    device: Device
    version: int = 5
    on_puback: Callable[[int, int], None] | None = None
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        protocol = paho.MQTTv5 if self.version == 5 else paho.MQTTv311
        self.paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.device.name, protocol=protocol
        )
        self.paho.tls_set(
            ca_certs=str(self.device.ca),
            certfile=str(self.device.cert),
            keyfile=str(self.device.key),
        )
        self.paho.max_inflight_messages_set(100)
        self._connected = threading.Event()
        self._connack: Any = None
        self._acks: dict[int, queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.paho.on_subscribe = self._on_ack
        self.paho.on_publish = self._on_publish

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self._connack = rc
        self._connected.set()

    def _queue(self, mid: int) -> queue.Queue[Any]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def _on_ack(self, c: Any, u: Any, mid: int, rcs: Any, props: Any) -> None:
        self._queue(mid).put(rcs)

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        value = rc.value if hasattr(rc, "value") else int(rc)
        if self.on_puback is not None:
            self.on_puback(mid, value)
        self._queue(mid).put(value)

    def __enter__(self) -> DeviceConnection:
        self.paho.connect("127.0.0.1", self.port, keepalive=60)
        self.paho.loop_start()
        assert self._connected.wait(WAIT), "no CONNACK"
        assert not self._connack.is_failure, self._connack
        return self

    def __exit__(self, *exc: object) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def subscribe(self, topic: str) -> None:
        rc, mid = self.paho.subscribe(topic, 1)
        assert rc == paho.MQTT_ERR_SUCCESS
        codes = self._queue(mid).get(timeout=WAIT)
        assert all(not getattr(c, "is_failure", c == 0x80) for c in codes), codes

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish QoS 1 without waiting; returns the packet id."""
        info = self.paho.publish(topic, payload, 1)
        assert info.rc == paho.MQTT_ERR_SUCCESS, info.rc
        return int(info.mid)

    def puback(self, mid: int) -> int:
        """Wait for the PUBACK of ``mid``; its reason code (0 on MQTT 3.1.1)."""
        return int(self._queue(mid).get(timeout=WAIT))

    def expect(self, topics: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        while True:
            topic, payload = self.messages.get(timeout=WAIT)
            if topic in topics:
                return topic, json.loads(payload)
