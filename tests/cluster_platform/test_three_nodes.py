"""Three nodes as one platform: provisioning, the identity API, ingest and upload links work
through every node, on one PostgreSQL database and one S3 bucket."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from lantern.device.client import DeviceClient, Endpoint
from lantern.device.ingest import (
    observation_payload,
    put_file,
    request_upload_link,
    upload_observation,
)
from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

from .conftest import node, start_all

pytestmark = pytest.mark.postgres


def _admin(proc: LanternProcess) -> httpx.Client:
    token = (proc.data_dir / "admin-token").read_text().strip()
    return httpx.Client(
        base_url=proc.http_url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )


def _on(url: str, proc: LanternProcess) -> str:
    """``url`` with its host and port replaced by ``proc``'s HTTP address."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proc.http_port}"))


@pytest.mark.timeout(600)
def test_provisioning_identity_ingest_and_uploads_on_every_node(
    tmp_path: Path, cluster_env: dict[str, str], stop_after: list[LanternProcess]
) -> None:
    # Uploads through Lantern (not presigned S3 PUTs): a link signed by one node is honoured by
    # another (one shared signing key) and streamed into the one bucket.
    env = {**cluster_env, "LANTERN_INGEST__S3_DIRECT_UPLOAD": "false"}
    nodes = [node(tmp_path, name, env) for name in ("a", "b", "c")]
    stop_after += nodes
    start_all(nodes, timeout=240)
    a, b, c = nodes

    out = tmp_path / "claim"
    done = lantern_cli(
        a, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    claim = Claim(cert, cert.with_suffix(".key"), out / "ca.pem")

    # One device provisioned through each node.
    devices = {}
    for i, proc in enumerate(nodes):
        result, files = provision_device(proc, claim, tmp_path / f"dev{i}", serial=f"s{i}")
        devices[result.thing_name] = files
    # The identity API of every node sees all three things.
    for proc in nodes:
        with _admin(proc) as admin:
            listed = admin.get("/v1/things")
        assert listed.status_code == 200, listed.text
        names = {t["thingName"] for t in listed.json()["things"]}
        assert set(devices) <= names, (proc.data_dir, names)

    thing, files = next(iter(devices.items()))
    # An observation sent through node c is acknowledged after its commit, readable on node a.
    with DeviceClient(
        Endpoint("localhost", c.mqtt_port),
        ca_file=c.ca_file,
        cert_file=files.cert,
        key_file=files.key,
        client_id=thing,
    ) as device:
        observation_id = upload_observation(
            device, thing, observation_payload(72, "beats/minute", "8867-4", "http://loinc.org")
        )
    # An upload link asked of node b works on node c; the file is read through node a.
    with DeviceClient(
        Endpoint("localhost", b.mqtt_port),
        ca_file=b.ca_file,
        cert_file=files.cert,
        key_file=files.key,
        client_id=thing,
    ) as device:
        link = request_upload_link(device, thing, "ecg.csv", "text/csv")
    with _admin(a) as admin:
        stored = admin.get(f"/fhir/Observation/{observation_id}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["valueQuantity"]["value"] == 72

    content = tmp_path / "ecg.csv"
    content.write_bytes(b"t,mV\n" + b"0,1\n" * 5000)
    assert urlsplit(link.url).port == b.http_port  # the link names the node that signed it
    uploaded = put_file(_on(link.url, c), content, "text/csv")
    assert uploaded.status == 201, uploaded.server
    with _admin(a) as admin:
        read = admin.get(f"/files/{link.file_id}/content")
    assert read.status_code == 200
    assert read.content == content.read_bytes()
