"""The duties three nodes share through PostgreSQL: push through any node's ``/push`` is sent
once and logged once; observations sent through every node are forwarded (the outbox) once each;
a recurring schedule fires exactly once per occurrence across the three schedulers, and keeps
firing after the node that fired the last one is killed (``kill -9``)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from lantern.device.client import DeviceClient, Endpoint
from lantern.device.ingest import observation_payload, upload_observation
from support.apns_standin import APNsStandIn, SigningKey
from support.process import LanternProcess
from support.provisioning_env import claim_files, lantern_cli, provision_device
from support.waiting import wait_for

from .conftest import node, start_all

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]

API_KEY = "cluster-seed-style-key-0123456789"
SPEED = 30  # scheduler clock: one minute every 2 s
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def apns(tmp_path: Path) -> Iterator[APNsStandIn]:
    # Three processes sign their own provider tokens: the per-process refresh limit is off.
    key = SigningKey.create(tmp_path)
    with APNsStandIn(tmp_path / "apns-tls", key, enforce_refresh_limit=False) as standin:
        yield standin


def _push_env(standin: APNsStandIn) -> dict[str, str]:
    return {
        "API_KEYS": API_KEY,
        "API_KEYS_SCOPE": "external",
        "LANTERN_PUSH__APNS__KEY_FILE": str(standin.key.path),
        "LANTERN_PUSH__APNS__KEY_ID": standin.key.key_id,
        "LANTERN_PUSH__APNS__TEAM_ID": standin.key.team_id,
        "LANTERN_PUSH__APNS__TOPIC": standin.topic,
        "LANTERN_PUSH__APNS__HOST": standin.host,
        "LANTERN_PUSH__APNS__CA_FILE": str(standin.ca_file),
    }


class FhirTarget:
    """The forward target: answers ``PUT /fhir/Observation/<id>`` and counts each id."""

    def __init__(self) -> None:
        self.puts: Counter[str] = Counter()
        lock = threading.Lock()
        puts = self.puts

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                oid = self.path.rsplit("/", 1)[1]
                assert body["id"] == oid and body["resourceType"] == "Observation"
                with lock:
                    puts[oid] += 1
                out = json.dumps(body).encode()
                self.send_response(201)
                self.send_header("content-type", "application/fhir+json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _sql(database_url: str, query: str) -> list[Any]:
    import asyncpg

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)

    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_push_log_and_outbox_forwarding_with_three_nodes(
    tmp_path: Path,
    cluster_env: dict[str, str],
    stop_after: list[LanternProcess],
    apns: APNsStandIn,
) -> None:
    target = FhirTarget()
    try:
        env = {
            **cluster_env,
            **_push_env(apns),
            "LANTERN_INGEST__FHIR_FORWARD_URL": target.url,
            "LANTERN_SCHEDULE__ENABLED": "false",
        }
        nodes = [node(tmp_path, name, env) for name in ("a", "b", "c")]
        stop_after += nodes
        start_all(nodes, timeout=240)

        # Push through every node: each sent once, each logged once, readable from any node.
        sent: dict[str, str] = {}
        for i, proc in enumerate(nodes):
            for j in range(3):
                token = f"{i:02x}{j:02x}" * 16
                answer = httpx.post(
                    f"{proc.http_url}/push",
                    json={
                        "api_key": API_KEY,
                        "device_token": f"apns:{token}",
                        "payload": {"aps": {"alert": f"hello {i}.{j}"}},
                    },
                    timeout=15,
                )
                assert answer.status_code == 200, answer.text
                assert "logged" not in answer.json(), answer.json()
                sent[answer.json()["id"]] = token
        assert [apns.count_for(token) for token in sent.values()] == [1] * len(sent)
        listed = lantern_cli(nodes[2], "deliveries", "list", "--json", "--limit", "100")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert Counter(row["deliveryId"] for row in rows) == Counter(list(sent)), rows
        assert {row["status"] for row in rows} == {"delivered"}, rows

        # Observations through every node, the forwarding node's first (its own commits wake
        # it; the others' it must find by itself); the outbox forwards each one once.
        out = tmp_path / "claim"
        claim = claim_files(nodes[0], out)
        forwarding = wait_for(
            lambda: [
                n for n in nodes if "fhir-forwarder: this node runs it now" in n.current_output()
            ],
            30,
            "a node runs the FHIR forwarder",
        )
        assert len(forwarding) == 1, "the forwarder runs on exactly one node"
        ordered = forwarding + [n for n in nodes if n is not forwarding[0]]
        observations: list[str] = []
        for i, proc in enumerate(ordered):
            result, files = provision_device(proc, claim, tmp_path / f"dev{i}", serial=f"o{i}")
            with DeviceClient(
                Endpoint("localhost", proc.mqtt_port),
                ca_file=proc.ca_file,
                cert_file=files.cert,
                key_file=files.key,
                client_id=result.thing_name,
            ) as device:
                for value in range(3):
                    body = observation_payload(60 + value, "beats/minute", "8867-4", "loinc")
                    observations.append(upload_observation(device, result.thing_name, body))
        url = cluster_env["LANTERN_DATABASE_URL"]

        def all_delivered() -> bool:
            rows = _sql(url, "SELECT observation_id, state FROM fhir_outbox")
            return sorted(r[0] for r in rows if r[1] == "delivered") == sorted(observations)

        wait_for(all_delivered, 30, "every observation forwarded")
        assert target.puts == Counter(observations), target.puts
    finally:
        target.close()


def test_a_schedule_fires_once_per_occurrence_across_three_nodes_and_after_a_kill_9(
    tmp_path: Path,
    cluster_env: dict[str, str],
    stop_after: list[LanternProcess],
    apns: APNsStandIn,
) -> None:
    # One scaled clock for the three nodes: 2030-01-01T00:00Z at this real instant, 30x fast.
    since = time.time()
    env = {
        **cluster_env,
        **_push_env(apns),
        "LANTERN_TEST_SCHEDULE_CLOCK": f"{EPOCH.isoformat()}@{SPEED}@{since}",
        "LANTERN_SCHEDULE__TICK_SECONDS": "6",  # 0.2 s of real time
        "LANTERN_SCHEDULE__CLAIM_LEASE_SECONDS": "120",  # 4 s of real time
    }
    nodes = [node(tmp_path, name, env) for name in ("a", "b", "c")]
    stop_after += nodes
    start_all(nodes, timeout=240)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    # Starting in the next minute of the nodes' clock (no occurrence before it is missed).
    now = EPOCH + timedelta(seconds=(time.time() - since) * SPEED)
    start = (now + timedelta(minutes=1)).replace(second=0, microsecond=0, tzinfo=None)
    device = "5e" * 32
    created = httpx.post(
        f"{nodes[1].http_url}/schedules",
        headers=auth,
        json={
            "activity_id": "act-cluster",
            "participant_id": "P1",
            "destinations": [f"apns:{device}"],
            "title": "Check-in",
            "message": "every minute",
            "timezone": "UTC",
            "start": start.isoformat(),
            "cron": "* * * * *",
        },
        timeout=15,
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]

    def history(proc: LanternProcess) -> list[dict[str, Any]]:
        got = httpx.get(f"{proc.http_url}/schedules/{sid}/history", headers=auth, timeout=10)
        assert got.status_code == 200, got.text
        return list(got.json()["occurrences"])

    def fired() -> list[dict[str, Any]]:
        return [o for o in history(nodes[0]) if o["status"] == "fired"]

    def fired_by(proc: LanternProcess) -> float:
        text = httpx.get(f"{proc.http_url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("lantern_schedule_occurrences_fired_total "):
                return float(line.split()[1])
        raise AssertionError("lantern_schedule_occurrences_fired_total not in /metrics")

    wait_for(lambda: len(fired()) >= 3, 30, "three occurrences fired")
    # The node that fires the next occurrence is killed right after its result is recorded
    # (the one after is up to 2 s away, so the kill does not land in the middle of a send).
    before = [fired_by(p) for p in nodes]

    def firing() -> list[LanternProcess]:
        now = [fired_by(p) for p in nodes]
        return [p for p, b, n in zip(nodes, before, now, strict=True) if n > b]

    (holder,) = wait_for(firing, 15, "the next occurrence")

    wait_for(
        lambda: all(o["status"] != "claimed" for o in history(nodes[0])),
        15,
        "its result recorded",
    )
    killed_at = max(o["scheduled_at"] for o in fired())
    assert holder.proc is not None
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    survivor = next(p for p in nodes if p is not holder)

    def fired_after_kill() -> bool:
        later = [o for o in history(survivor) if o["scheduled_at"] > killed_at]
        return sum(o["status"] == "fired" for o in later) >= 4

    wait_for(fired_after_kill, 45, "four occurrences fired after the kill")
    done = [o for o in history(survivor) if o["status"] != "claimed"]
    assert {o["status"] for o in done} == {"fired"}, done

    # Exactly once: one APNs request per occurrence (apns-collapse-id = <schedule>-<slot>),
    # one per fired occurrence, and no minute skipped, across the kill.
    slots = Counter(
        r.headers["apns-collapse-id"] for r in apns.requests if r.device_token == device
    )
    assert set(slots.values()) == {1}, [s for s, n in slots.items() if n > 1]
    minutes = sorted(int(s.rsplit("-", 1)[1]) for s in slots)
    assert minutes == list(range(minutes[0], minutes[-1] + 60, 60)), minutes
    assert len(slots) == len(done), (len(slots), len(done))
    for o in done:
        at = datetime.fromisoformat(o["scheduled_at"]).astimezone(UTC)
        assert slots[f"{sid}-{int(at.timestamp())}"] == 1, o
    # The survivors fired the occurrences after the kill.
    assert sum(fired_by(p) for p in nodes if p is not holder) >= 4
