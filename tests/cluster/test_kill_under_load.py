"""``kill -9`` of a node under ingest load (docs/cluster.md, "What survives the loss of a node"):
provisioned devices spread over three nodes publish FHIR observations with QoS 1 without pause;
one node is killed mid-load; its devices reconnect to the others, their persistent sessions
resume (``sessionPresent`` and the reply subscription, not made again) and they carry on. At the
end every observation whose PUBACK a device received is in PostgreSQL, once, and nothing that
was never sent is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.engine import make_url

from lantern.device.ingest import FHIR_INGEST_TOPIC, observation_payload
from support.cluster import Node, cluster
from support.mqtt_server import ClientFiles, props
from support.provisioning_env import claim_files, provision_device

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

DEVICES = 6  # two per node
WINDOW = 4  # QoS 1 publishes in flight per device
BEFORE, AFTER = 15, 15  # acknowledged observations per device before the kill and after it
WAIT = 45.0  # bound on each phase (a loaded 2-CPU machine)


@dataclass
class Device:
    """One device: publishes observation ``value = seq`` with QoS 1, up to :data:`WINDOW` in
    flight, and moves to another node when its connection drops."""

    thing: str
    files: ClientFiles
    nodes: list[Node]
    home: int
    acked: set[int] = field(default_factory=set)
    sent: set[int] = field(default_factory=set)
    refused: list[int] = field(default_factory=list)  # PUBACK reason codes >= 0x80
    connections: list[tuple[int, bool]] = field(default_factory=list)  # (node, sessionPresent)
    replies: list[int] = field(default_factory=list)  # accepted replies per connection
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def _connect(self, index: int) -> tuple[paho.Client, queue.Queue[Any], threading.Event]:
        acks: queue.Queue[Any] = queue.Queue()
        connack: queue.Queue[Any] = queue.Queue()
        lost = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.thing, protocol=paho.MQTTv5
        )
        client.tls_set(
            ca_certs=str(self.files.ca), certfile=str(self.files.cert), keyfile=str(self.files.key)
        )
        slot = len(self.replies)
        self.replies.append(0)

        def on_message(c: Any, u: Any, msg: paho.MQTTMessage) -> None:
            if msg.topic == f"{self.thing}/FHIRIngest/accepted":
                self.replies[slot] += 1

        client.on_connect = lambda c, u, flags, rc, p: connack.put((rc, flags.session_present))
        client.on_publish = lambda c, u, mid, rc, p: acks.put((mid, rc))
        client.on_disconnect = lambda c, u, flags, rc, p: lost.set()
        client.on_message = on_message
        node = self.nodes[index]
        client.connect(
            "127.0.0.1",
            node.proc.mqtt_port,
            clean_start=False,
            properties=props(1, SessionExpiryInterval=600),
        )
        client.loop_start()
        rc, present = connack.get(timeout=15)
        assert not rc.is_failure, rc
        self.connections.append((index, bool(present)))
        return client, acks, lost

    def start(self) -> threading.Thread:
        client, _acks, _ = self._connect(self.home)
        subscribed: queue.Queue[Any] = queue.Queue()
        client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
        client.subscribe(f"{self.thing}/FHIRIngest/accepted", qos=1)
        subscribed.get(timeout=15)
        client.loop_stop()
        client.disconnect()  # the session stays (expiry 600 s); run() connects again
        thread = threading.Thread(target=self._run_safely, name=self.thing, daemon=True)
        thread.start()
        return thread

    def _run_safely(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        index = self.home
        client, acks, lost = self._connect(index)
        inflight: dict[int, int] = {}
        seq = 0
        while not self.stop.is_set():
            while len(inflight) < WINDOW and not lost.is_set():
                seq += 1
                body = observation_payload(seq, "beats/minute", "8867-4", "http://loinc.org")
                info = client.publish(FHIR_INGEST_TOPIC, json.dumps(body).encode(), qos=1)
                self.sent.add(seq)
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    break  # not sent: the connection is gone
                inflight[info.mid] = seq
            with contextlib.suppress(queue.Empty):
                self._ack(acks.get(timeout=0.2), inflight)
            if lost.is_set():
                client.loop_stop()  # no reconnection to the dead node
                while not acks.empty():  # PUBACKs read before the connection dropped
                    self._ack(acks.get_nowait(), inflight)
                inflight.clear()  # sent, never acknowledged: may or may not be stored
                alive = [
                    i
                    for i, n in enumerate(self.nodes)
                    if n.proc.proc and n.proc.proc.poll() is None
                ]
                index = alive[(alive.index(index) + 1) % len(alive)] if index in alive else alive[0]
                client, acks, lost = self._connect(index)
        deadline = time.monotonic() + 15
        while inflight and time.monotonic() < deadline and not lost.is_set():
            # The last PUBACKs: an unanswered publish stays "sent, not acknowledged".
            with contextlib.suppress(queue.Empty):
                self._ack(acks.get(timeout=0.2), inflight)
        client.disconnect()
        client.loop_stop()

    def _ack(self, ack: tuple[int, Any], inflight: dict[int, int]) -> None:
        mid, rc = ack
        seq = inflight.pop(mid, None)
        if seq is None:
            return
        if rc.is_failure:
            self.refused.append(rc.value)
        else:
            self.acked.add(seq)


def _wait(condition: Any, timeout: float, what: str, devices: list[Device]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = [d.error for d in devices if d.error is not None]
        if errors:
            raise AssertionError(f"a device failed: {errors[0]!r}") from errors[0]
        if condition():
            return
        time.sleep(0.1)
    counts = {d.thing: (len(d.sent), len(d.acked), d.connections) for d in devices}
    raise AssertionError(f"not within {timeout} s: {what}; {counts}")


def _stored(database_url: str) -> list[tuple[str, float]]:
    """(thing, value) of every observation row in PostgreSQL."""
    import asyncpg

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)

    async def read() -> list[tuple[str, float]]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            rows = await conn.fetch("SELECT thing_name, resource FROM observations")
        finally:
            await conn.close()
        return [(r[0], json.loads(r[1])["valueQuantity"]["value"]) for r in rows]

    return asyncio.run(read())


def test_kill_9_under_ingest_load_loses_no_acknowledged_observation(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    with cluster(tmp_path, 3, s3_env) as nodes:
        a = nodes[0]
        out = tmp_path / "claim"
        claim = claim_files(a.proc, out)
        devices = []
        for i in range(DEVICES):
            home = i % len(nodes)
            result, files = provision_device(nodes[home].proc, claim, tmp_path / f"d{i}", f"k{i}")
            devices.append(Device(result.thing_name, files, nodes, home))
        threads = [d.start() for d in devices]
        try:
            _wait(
                lambda: all(len(d.acked) >= BEFORE for d in devices), WAIT, "load before", devices
            )
            victim = nodes[2]
            moving = [d for d in devices if d.home == 2]
            at_kill = {d.thing: len(d.acked) for d in devices}
            victim.proc.stop(signal.SIGKILL)  # mid-load: every device has publishes in flight
            _wait(
                lambda: all(len(d.acked) >= at_kill[d.thing] + AFTER for d in devices),
                WAIT,
                "load after the kill",
                devices,
            )
        finally:
            for d in devices:
                d.stop.set()
            for t in threads:
                t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        assert [d.error for d in devices] == [None] * DEVICES

        # The victim's devices moved once, to a survivor, and their sessions resumed there:
        # sessionPresent, and replies through the subscription made on the dead node.
        for d in moving:
            assert [i for i, _ in d.connections] == [2, 2, d.connections[2][0]], d.connections
            moved_to, present = d.connections[2]
            assert moved_to in (0, 1) and present, d.connections
            assert d.replies[2] > 0, d.replies
        # The others never lost their connection.
        for d in devices:
            if d not in moving:
                assert len(d.connections) == 2, (d.thing, d.connections)
            assert d.refused == [], (d.thing, d.refused)

        database_url = a.proc.env["LANTERN_DATABASE_URL"]
        stored = _stored(database_url)
        by_thing: dict[str, list[float]] = {d.thing: [] for d in devices}
        for thing, value in stored:
            by_thing[thing].append(value)
        for d in devices:
            values = by_thing[d.thing]
            assert len(values) == len(set(values)), f"{d.thing}: an observation stored twice"
            missing = d.acked - set(values)
            assert not missing, f"{d.thing}: acknowledged, not stored: {sorted(missing)[:20]}"
            assert set(values) <= d.sent, f"{d.thing}: stored but never sent"
        total = sum(len(d.acked) for d in devices)
        print(f"{total} acknowledged observations, {len(stored)} stored")
