"""Durability: ``kill -9`` of ``lantern serve`` while a device publishes QoS 1 observations; after
each restart every observation whose PUBACK the device received is stored (several cycles)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from support.process import LanternProcess

from .mqtt_kit import (
    WAIT,
    DeviceConnection,
    count_for_thing,
    create_claim,
    new_device,
    observation,
    stored_db,
    stored_patient_ids,
)

CYCLES = 3
ACKS_BEFORE_KILL = 250  # first cycle (+150 per cycle); more are in flight at the kill
WINDOW = 100  # QoS 1 publishes outstanding at once


def start(data_dir: Path) -> LanternProcess:
    proc = LanternProcess(data_dir).start()
    return proc


class Publisher:
    """Publishes QoS 1 observations (``WINDOW`` outstanding) from a thread and records which
    packet ids were acknowledged. paho runs ``on_puback`` while holding its own lock, so no lock
    of ours is held around ``publish`` (that would deadlock); ids are resolved to observations
    (their patient id) at the end."""

    def __init__(self, cycle: int, kill_after: int) -> None:
        self.cycle = cycle
        self.kill_after = kill_after
        self.patient_of: dict[int, str] = {}
        self.acked_mids: list[int] = []
        self.window = threading.Semaphore(WINDOW)
        self.enough = threading.Event()
        self.stopping = threading.Event()
        self.sent = 0

    def on_puback(self, mid: int, reason: int) -> None:
        if reason == 0:
            self.acked_mids.append(mid)
            if len(self.acked_mids) >= self.kill_after:
                self.enough.set()
        self.window.release()

    def run(self, conn: DeviceConnection) -> None:
        while not self.stopping.is_set():
            if not self.window.acquire(timeout=0.05):
                continue
            patient = f"c{self.cycle}-{self.sent}"
            info = conn.paho.publish(
                "$aws/rules/FHIRIngest", observation(self.sent % 100, patient), 1
            )
            self.patient_of[info.mid] = patient
            self.sent += 1

    def acknowledged(self) -> set[str]:
        # Packet ids do not wrap within a cycle (fewer than 65535 publishes).
        return {self.patient_of[mid] for mid in self.acked_mids}


@pytest.mark.slow
def test_every_acknowledged_observation_survives_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = start(data_dir)
    claim = create_claim(proc, tmp_path / "claim")
    device = new_device(proc, claim, tmp_path / "certs", serial="crash")
    acked: set[str] = set()  # patient ids (one per observation) whose PUBACK arrived
    sent_total = 0
    t0 = time.monotonic()
    for cycle in range(CYCLES):
        publisher = Publisher(cycle, kill_after=ACKS_BEFORE_KILL + 150 * cycle)
        with DeviceConnection(proc.mqtt_port, device, 5, on_puback=publisher.on_puback) as conn:
            conn.paho.reconnect_delay_set(60, 60)  # after the kill, do not retry meanwhile
            thread = threading.Thread(target=publisher.run, args=(conn,))
            thread.start()
            assert publisher.enough.wait(WAIT), f"only {len(publisher.acked_mids)} PUBACKs"
            proc.kill()  # SIGKILL while publishes are in flight: no shutdown, no final commit
            publisher.stopping.set()
            thread.join(WAIT)
            sent_total += publisher.sent
        acked |= publisher.acknowledged()
        proc = start(data_dir)
        stored = stored_patient_ids(stored_db(proc), device.name)
        lost = acked - stored
        assert not lost, f"cycle {cycle}: {len(lost)} acknowledged observations lost"
        # Stored rows are whole: the FHIR API counts the same rows.
        admin = (data_dir / "admin-token").read_text().strip()
        bundle = httpx.get(
            f"{proc.http_url}/fhir/Observation",
            params={"device": device.name, "_count": "1"},
            headers={"Authorization": f"Bearer {admin}"},
        ).json()
        assert bundle["total"] == count_for_thing(stored_db(proc), device.name) >= len(acked)
    stored_total = count_for_thing(stored_db(proc), device.name)
    proc.stop()
    elapsed = time.monotonic() - t0
    print(
        f"{CYCLES} kill -9 cycles in {elapsed:.1f}s: {sent_total} published, "
        f"{len(acked)} acknowledged, {stored_total} stored, none acknowledged lost"
    )
