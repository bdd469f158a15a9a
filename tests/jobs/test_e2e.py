"""End to end against ``lantern serve``: provision real things by claim, deploy firmware with the
CLI, and update with the AWS IoT Device SDK (IotJobsClientV2 on MQTT 5 with the notify streams,
IotJobsClient on MQTT 3.1.1) and with ``lantern device firmware-update``."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, iotjobs

from jobs.databases import copy_postgres_template, drop_postgres_database
from lantern.device import Endpoint, provision, write_credentials
from support.aws_sdk import mqtt5_mtls_client, mqtt311_mtls_connection
from support.process import LanternProcess

TIMEOUT = 20.0
IMAGE = os.urandom(200_000)


@dataclass
class Server:
    proc: LanternProcess
    root: Path
    firmware_id: str

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "lantern", *args],
            env=self.proc.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def new_thing(self, serial: str) -> tuple[str, Path]:
        result = provision(
            Endpoint("localhost", self.proc.mqtt_port),
            ca_file=self.proc.ca_file,
            claim_cert=self.root / "claim" / "claim.pem",
            claim_key=self.root / "claim" / "claim.key",
            parameters={
                "SerialNumber": serial,
                "Manufacturer": "acme",
                "Name": serial,
                "Model": "m1",
            },
        )
        certs = self.root / "certs"
        write_credentials(result, certs)
        return result.thing_name, certs

    def rest(self) -> httpx.Client:
        token = (self.proc.data_dir / "admin-token").read_text().strip()
        return httpx.Client(
            base_url=self.proc.http_url,
            timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {token}"},
        )

    def deploy(self, *things: str) -> str:
        out = self.cli(
            "deployments", "create", "--firmware", self.firmware_id, "--things", ",".join(things)
        )
        return out.split("Deployment ", 1)[1].split(" ", 1)[0]

    def deploy_rest(self, *things: str) -> str:
        """As :meth:`deploy`, through the REST API (no CLI process to start)."""
        with self.rest() as rest:
            created = rest.post(
                "/v1/deployments", json={"firmwareId": self.firmware_id, "things": list(things)}
            )
        assert created.status_code == 201, created.text
        return str(created.json()["deploymentId"])


@contextmanager
def serving(root: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``lantern serve`` with a claim (``claim/claim.pem``) and a firmware image uploaded."""
    # A short timer tick: notifications of CLI changes reach devices sooner (default 1 s).
    env = {"LANTERN_JOBS__TIMER_TICK_SECONDS": "0.2", **(env or {})}
    with LanternProcess(root / "data", env=env) as proc:
        s = Server(proc, root, "")
        image = root / "image.bin"
        image.write_bytes(IMAGE)
        # Two CLI processes at once: each spends most of its time starting Python.
        with ThreadPoolExecutor(max_workers=2) as pool:
            claims = pool.submit(
                s.cli,
                "claims",
                "create",
                "--template",
                "DefaultProvisioningTemplate",
                "--out",
                str(root / "claim"),
            )
            upload = pool.submit(
                s.cli, "firmware", "upload", str(image), "--version", "3.0.1", "--name", "pump"
            )
            claim_out, out = claims.result(), upload.result()
        pems = sorted((root / "claim").glob("claim-*.pem"))
        keys = sorted((root / "claim").glob("claim-*.key"))
        assert pems and keys, claim_out
        pems[0].rename(root / "claim" / "claim.pem")
        keys[0].rename(root / "claim" / "claim.key")
        assert hashlib.sha256(IMAGE).hexdigest() in out
        s.firmware_id = out.split("Firmware ", 1)[1].split(" ", 1)[0]
        yield s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("jobs-e2e")) as s:
        yield s


@pytest.fixture(scope="module")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_template: str
) -> Iterator[Server]:
    """The server on a PostgreSQL database of its own (migrated: a copy of the template)."""
    url = copy_postgres_template(postgres_template)
    try:
        with serving(tmp_path_factory.mktemp("jobs-e2e-pg"), {"LANTERN_DATABASE_URL": url}) as s:
            yield s
    finally:
        drop_postgres_database(url)


def mqtt5_client(server: Server, thing: str, certs: Path) -> tuple[mqtt5.Client, Future[Any]]:
    return mqtt5_mtls_client(server.proc.mqtt_port, server.proc.ca_file, thing, certs, TIMEOUT)


def test_v2_client_complete_update_with_notify_streams(server: Server) -> None:
    thing, certs = server.new_thing("v2dev")
    client, stopped = mqtt5_client(server, thing, certs)
    options = mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=2,
        max_streaming_subscriptions=2,
        operation_timeout_in_seconds=30,
    )
    jobs = iotjobs.IotJobsClientV2(client, options)
    events: dict[str, queue.Queue[Any]] = {"notify": queue.Queue(), "next": queue.Queue()}
    subscribed = {"notify": threading.Event(), "next": threading.Event()}

    def stream_options(name: str) -> ServiceStreamOptions[Any]:
        def on_status(event: Any) -> None:
            if (
                event.type
                == mqtt_request_response.SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED
            ):
                subscribed[name].set()

        return ServiceStreamOptions(
            incoming_event_listener=events[name].put, subscription_status_listener=on_status
        )

    s1 = jobs.create_job_executions_changed_stream(
        iotjobs.JobExecutionsChangedSubscriptionRequest(thing_name=thing), stream_options("notify")
    )
    s1.open()
    s2 = jobs.create_next_job_execution_changed_stream(
        iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing), stream_options("next")
    )
    s2.open()
    assert subscribed["notify"].wait(TIMEOUT) and subscribed["next"].wait(TIMEOUT)
    try:
        pending = jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
        ).result(TIMEOUT)
        assert len(pending.in_progress_jobs) == 0 and len(pending.queued_jobs) == 0

        job_id = server.deploy(thing)
        nxt = events["next"].get(timeout=TIMEOUT)
        assert nxt.execution.job_id == job_id and nxt.execution.status == iotjobs.JobStatus.QUEUED
        changed = events["notify"].get(timeout=TIMEOUT)
        assert changed.jobs[iotjobs.JobStatus.QUEUED][0].job_id == job_id

        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(
                thing_name=thing, status_details={"percentProgress": "0"}
            )
        ).result(TIMEOUT)
        assert started.execution.job_id == job_id
        assert started.execution.status == iotjobs.JobStatus.IN_PROGRESS
        document = started.execution.job_document
        assert document["operation"] == "firmware_update" and document["firmwareVersion"] == "3.0.1"

        # Download the image over HTTP, interrupted after the first part and resumed.
        url = document["firmwareUrl"]
        with httpx.Client(timeout=TIMEOUT) as http, http.stream("GET", url) as first:
            have = b""
            for chunk in first.iter_bytes(50_000):
                have += chunk
                break
        with httpx.Client(timeout=TIMEOUT) as http:
            rest = http.get(url, headers={"Range": f"bytes={len(have)}-"})
        assert rest.status_code == 206
        assert hashlib.sha256(have + rest.content).hexdigest() == document["sha256"]

        described = jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id=job_id)
        ).result(TIMEOUT)
        assert described.execution.status == iotjobs.JobStatus.IN_PROGRESS
        assert described.execution.version_number == 2

        with pytest.raises(Exception) as info:
            jobs.update_job_execution(
                iotjobs.UpdateJobExecutionRequest(
                    thing_name=thing, job_id=job_id, status="IN_PROGRESS", expected_version=1
                )
            ).result(TIMEOUT)
        error = info.value.__cause__ or info.value
        modeled = getattr(error, "modeled_error", None) or getattr(
            info.value, "modeled_error", None
        )
        assert modeled is not None and modeled.code == "VersionMismatch"
        assert modeled.execution_state.version_number == 2

        done = jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id=job_id,
                status=iotjobs.JobStatus.SUCCEEDED,
                status_details={"percentProgress": "100"},
                include_job_execution_state=True,
            )
        ).result(TIMEOUT)
        assert done.execution_state.status == iotjobs.JobStatus.SUCCEEDED

        final_next = events["next"].get(timeout=TIMEOUT)
        assert final_next.execution is None and final_next.timestamp is not None
        final_changed = events["notify"].get(timeout=TIMEOUT)
        assert not final_changed.jobs

        pending = jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
        ).result(TIMEOUT)
        assert len(pending.in_progress_jobs) == 0 and len(pending.queued_jobs) == 0
        shown = server.cli("deployments", "show", job_id)
        assert "SUCCEEDED" in shown and "100%" in shown
    finally:
        client.stop()
        stopped.result(TIMEOUT)


def test_v1_client_over_mqtt311(server: Server) -> None:
    thing, certs = server.new_thing("v1dev")
    conn = mqtt311_mtls_connection(
        server.proc.mqtt_port, server.proc.ca_file, thing, certs, TIMEOUT, keep_alive_secs=30
    )
    inbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    try:
        for topic in (
            f"$aws/things/{thing}/jobs/+/get/+",
            f"$aws/things/{thing}/jobs/+/update/+",
            f"$aws/things/{thing}/jobs/get/+",
            f"$aws/things/{thing}/jobs/notify-next",
        ):
            sub, _ = conn.subscribe(
                topic,
                mqtt.QoS.AT_LEAST_ONCE,
                lambda topic, payload, **kw: inbox.put((topic, json.loads(payload))),
            )
            sub.result(TIMEOUT)
        job_id = server.deploy_rest(thing)  # the CLI deploy is covered by the v2 test
        topic, body = inbox.get(timeout=TIMEOUT)
        assert topic.endswith("/notify-next") and body["execution"]["jobId"] == job_id

        client = iotjobs.IotJobsClient(conn)
        client.publish_get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name=thing, client_token="g1"),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(TIMEOUT)
        topic, body = inbox.get(timeout=TIMEOUT)
        assert topic.endswith("/jobs/get/accepted") and body["clientToken"] == "g1"
        parsed = iotjobs.GetPendingJobExecutionsResponse.from_payload(body)
        assert parsed.queued_jobs[0].job_id == job_id

        client.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id=job_id,
                status="REJECTED",
                status_details={"reason": "not for me"},
                client_token="u1",
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(TIMEOUT)
        topic, body = inbox.get(timeout=TIMEOUT)
        assert topic.endswith(f"/{job_id}/update/accepted") and body["clientToken"] == "u1"
        client.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing, job_id=job_id, status="SUCCEEDED", client_token="u2"
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(TIMEOUT)
        seen = [inbox.get(timeout=TIMEOUT) for _ in range(2)]
        rejected = next(b for t, b in seen if t.endswith("/update/rejected"))
        err = iotjobs.RejectedError.from_payload(rejected)
        assert err.code == "InvalidStateTransition" and err.client_token == "u2"
        assert err.execution_state.status == "REJECTED"
        assert any(t.endswith("/notify-next") for t, _ in seen)
    finally:
        conn.disconnect().result(TIMEOUT)


def test_device_toolkit_firmware_update(server: Server) -> None:
    device_toolkit_update(server)


@pytest.mark.postgres
def test_device_toolkit_firmware_update_on_postgres(postgres_server: Server) -> None:
    device_toolkit_update(postgres_server)


def device_toolkit_update(server: Server) -> None:
    """Deploy over REST to a provisioned thing; ``lantern device firmware-update`` installs it
    (StartNext, UpdateJobExecution, the signed download) and finds nothing more to do after."""
    thing, certs = server.new_thing("tooldev")
    with server.rest() as rest:
        created = rest.post(
            "/v1/deployments", json={"firmwareId": server.firmware_id, "things": [thing]}
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["deploymentId"]
        # The REST call ran the rollout: the execution is QUEUED already.
        assert created.json()["counts"] == {"QUEUED": 1}
    out = server.root / "installed.bin"
    env = server.proc.command_env()

    def run_device() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "lantern",
                "device",
                "firmware-update",
                "--deviceName",
                thing,
                "--out",
                str(out),
                "--endpoint",
                f"localhost:{server.proc.mqtt_port}",
                "--ca",
                str(server.proc.ca_file),
                "--certs-dir",
                str(certs),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = run_device()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCEEDED" in result.stdout
    # Readable lines, not Python dicts: what was reported, and which firmware.
    assert f"job {job_id}: starting" in result.stdout
    assert "version 3.0.1" in result.stdout
    assert "reported IN_PROGRESS: downloading, 0 %" in result.stdout
    assert "reported SUCCEEDED: 100 %" in result.stdout
    assert "{'" not in result.stdout
    assert out.read_bytes() == IMAGE
    with server.rest() as rest:
        execution = rest.get(f"/v1/deployments/{job_id}").json()["executions"][0]
    assert execution["status"] == "SUCCEEDED" and execution["progress"] == "100"
    again = run_device()
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"No firmware job is pending for {thing}: nothing to do." in again.stdout
