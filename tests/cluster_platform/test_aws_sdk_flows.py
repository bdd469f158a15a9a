"""The AWS IoT Device SDK v2 (``awsiotsdk``) across three nodes: a device provisions itself
through node a (IotIdentityClientV2, MQTT 5 request-response, claim certificate), connects as
its thing to node c and runs a firmware job created through node b's HTTP API
(IotJobsClientV2); the image is downloaded with the job document's URL and the result is read
through node a."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from awscrt import mqtt5, mqtt_request_response
from awsiot import iotidentity, iotjobs, mqtt5_client_builder

from support.process import LanternProcess
from support.provisioning_env import lantern_cli
from support.waiting import wait_for

from .conftest import node, start_all

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]

TIMEOUT = 30
IMAGE = os.urandom(20_000)
PARAMS = {"SerialNumber": "SDK-1", "Manufacturer": "acme", "Name": "pump", "Model": "p1"}


class Mqtt5:
    """An awscrt MQTT 5 client over mutual TLS, started on enter and stopped on exit."""

    def __init__(self, port: int, cert: Path, key: Path, ca: Path, client_id: str) -> None:
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.failed: list[object] = []
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="localhost",
            port=port,
            cert_filepath=str(cert),
            pri_key_filepath=str(key),
            ca_filepath=str(ca),
            client_id=client_id,
            on_lifecycle_connection_success=lambda event: self.connected.set(),
            on_lifecycle_connection_failure=lambda event: self.failed.append(event),
            on_lifecycle_stopped=lambda event: self.stopped.set(),
        )

    def __enter__(self) -> mqtt5.Client:
        self.client.start()
        assert self.connected.wait(TIMEOUT), self.failed
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.stop()
        self.stopped.wait(TIMEOUT)  # awscrt must not be torn down with a client running


def _options() -> mqtt_request_response.ClientOptions:
    return mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=2,
        max_streaming_subscriptions=2,
        operation_timeout_in_seconds=TIMEOUT,
    )


def _rest(proc: LanternProcess) -> httpx.Client:
    token = (proc.data_dir / "admin-token").read_text().strip()
    return httpx.Client(
        base_url=proc.http_url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )


def test_sdk_device_provisions_on_one_node_and_runs_a_job_created_on_another(
    tmp_path: Path, cluster_env: dict[str, str], stop_after: list[LanternProcess]
) -> None:
    nodes = [node(tmp_path, name, cluster_env) for name in ("a", "b", "c")]
    stop_after += nodes
    start_all(nodes, timeout=240)
    a, b, c = nodes

    out = tmp_path / "claim"
    done = lantern_cli(
        a, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    claim_cert = next(out.glob("claim-*.pem"))
    ca = out / "ca.pem"

    # Fleet provisioning by claim through node a.
    with Mqtt5(
        a.mqtt_port, claim_cert, claim_cert.with_suffix(".key"), ca, f"prov-{uuid.uuid4()}"
    ) as client:
        identity = iotidentity.IotIdentityClientV2(client, _options())
        created = identity.create_keys_and_certificate(
            iotidentity.CreateKeysAndCertificateRequest()
        ).result(TIMEOUT)
        registered = identity.register_thing(
            iotidentity.RegisterThingRequest(
                template_name="DefaultProvisioningTemplate",
                certificate_ownership_token=created.certificate_ownership_token,
                parameters=PARAMS,
            )
        ).result(TIMEOUT)
    thing = registered.thing_name
    assert thing == f"SDK-1-{created.certificate_id[:12]}"
    cert, key = tmp_path / "device.pem", tmp_path / "device.key"
    cert.write_text(created.certificate_pem)
    key.write_text(created.private_key)

    # A firmware image and a deployment, both through node b.
    with _rest(b) as rest:
        uploaded = rest.post("/v1/firmware", params={"version": "2.0"}, content=IMAGE)
        assert uploaded.status_code == 201, uploaded.text
        deployed = rest.post(
            "/v1/deployments",
            json={"firmwareId": uploaded.json()["firmwareId"], "things": [thing]},
        )
        assert deployed.status_code == 201, deployed.text
    job_id = deployed.json()["deploymentId"]

    # The device, connected to node c, runs it.
    with Mqtt5(c.mqtt_port, cert, key, ca, thing) as client:
        jobs = iotjobs.IotJobsClientV2(client, _options())

        def started() -> Any:
            return (
                jobs.start_next_pending_job_execution(
                    iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing)
                )
                .result(TIMEOUT)
                .execution
            )

        execution = wait_for(started, TIMEOUT, "the execution queued by the rollout", interval=0.2)
        assert execution.job_id == job_id
        assert execution.status == iotjobs.JobStatus.IN_PROGRESS
        document = execution.job_document
        url = next(v for v in _strings(document) if v.startswith(("http://", "https://")))
        image = httpx.get(url, timeout=15, follow_redirects=True)
        assert image.status_code == 200, image.text
        assert image.content == IMAGE
        jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id=job_id,
                status=iotjobs.JobStatus.SUCCEEDED,
                status_details={"version": "2.0"},
            )
        ).result(TIMEOUT)

    with _rest(a) as rest:
        view = rest.get(f"/v1/deployments/{job_id}")
    assert view.status_code == 200, view.text
    (only,) = view.json()["executions"]
    assert only["status"] == "SUCCEEDED", only


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
