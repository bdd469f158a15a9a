"""Durability: ``kill -9`` of ``lantern serve`` while a device updates its named shadows over
MQTT; after the restart every update whose ``/accepted`` reply the device received is stored
(each shadow's version is at least the highest version it was told)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from awsiot import V2ServiceException, iotshadow

from shadows.server import TIMEOUT, Server, mqtt5_client, shadow_client_v2, stop_mqtt5
from support.process import LanternProcess

SHADOWS = 3  # the V2 client keeps two subscriptions per shadow it updates
ACCEPTED_BEFORE_KILL = 400
IN_FLIGHT = 8  # below the 10 in-flight requests a connection may have


@pytest.mark.slow
def test_every_accepted_update_survives_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = LanternProcess(data_dir).start()
    try:
        server = Server(proc, tmp_path)
        server.cli(
            "claims",
            "create",
            "--template",
            "DefaultProvisioningTemplate",
            "--out",
            str(tmp_path / "claim"),
        )
        (tmp_path / "claim").joinpath("claim.pem").write_bytes(
            next((tmp_path / "claim").glob("claim-*.pem")).read_bytes()
        )
        (tmp_path / "claim").joinpath("claim.key").write_bytes(
            next((tmp_path / "claim").glob("claim-*.key")).read_bytes()
        )
        thing, certs = server.new_thing()
        client = mqtt5_client(server, thing, certs)
        shadows = shadow_client_v2(client)

        told: dict[str, int] = {}  # shadow -> highest version an accepted reply gave
        lock = threading.Lock()
        window = threading.Semaphore(IN_FLIGHT)
        enough = threading.Event()
        stop = threading.Event()
        accepted = 0

        def done(name: str, future: Future[Any]) -> None:
            nonlocal accepted
            window.release()
            try:
                version = future.result().version
            except (V2ServiceException, Exception):
                return  # refused or cut off by the kill: nothing promised
            with lock:
                told[name] = max(told.get(name, 0), version)
                accepted += 1
                if accepted >= ACCEPTED_BEFORE_KILL:
                    enough.set()

        def publish() -> None:
            i = 0
            while not stop.is_set():  # still publishing at the kill: some are in flight
                if not window.acquire(timeout=0.05):
                    continue
                name = f"s{i % SHADOWS}"
                request = iotshadow.UpdateNamedShadowRequest(
                    thing_name=thing,
                    shadow_name=name,
                    state=iotshadow.ShadowState(reported={"seq": i, "pad": "x" * 200}),
                )
                future = shadows.update_named_shadow(request)
                future.add_done_callback(lambda f, n=name: done(n, f))
                i += 1

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        assert enough.wait(60), f"only {accepted} updates accepted"
        proc.kill()  # SIGKILL, with updates in flight
        stop.set()
        publisher.join(TIMEOUT)
        stop_mqtt5(client)
    finally:
        proc.kill()
    with lock:
        promised = dict(told)
    assert sum(1 for v in promised.values() if v) == SHADOWS

    restarted = LanternProcess(data_dir).start()
    try:
        server = Server(restarted, tmp_path)
        with server.rest() as rest:
            for name, version in promised.items():
                answer = rest.get(f"/things/{thing}/shadow", params={"name": name})
                assert answer.status_code == 200, answer.text
                document = answer.json()
                assert document["version"] >= version, (name, document["version"], version)
                assert document["state"]["reported"]["pad"] == "x" * 200
    finally:
        restarted.stop()
