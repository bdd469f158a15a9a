"""Forming a cluster: shared platform material without copying keys, and the settings a node
refuses to start without."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import boto3
import pytest
from sqlalchemy.engine import make_url

from support.mqtt_server import Client, ClientFiles
from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

from .conftest import node, start_all

# Real nodes on a machine shared with other suites start slowly: more than the default 120 s.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]


def _sealed_rows(pg_url: str) -> list[asyncpg.Record]:
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def read() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch("SELECT name, ciphertext FROM cluster_secrets"))
        finally:
            await conn.close()

    return asyncio.run(read())


def _create_claim(server: LanternProcess, out: Path) -> Claim:
    done = lantern_cli(
        server, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    return Claim(cert, cert.with_suffix(".key"), out / "ca.pem")


def test_two_nodes_started_at_once_share_one_ca_and_provision_across(
    tmp_path: Path, cluster_env: dict[str, str], pg_url: str, stop_after: list[LanternProcess]
) -> None:
    one, two = node(tmp_path, "one", cluster_env), node(tmp_path, "two", cluster_env)
    stop_after += [one, two]
    start_all([one, two])

    # One CA, signing key, admin token, push key and access-key sealing key, though both
    # started on an empty database.
    shared = ("ca/ca.pem", "ca/ca.key", "signing.key", "admin-token", "push-address.key")
    for name in (*shared, "access-keys.key"):
        assert (one.data_dir / name).read_bytes() == (two.data_dir / name).read_bytes(), name
        assert (two.data_dir / name).stat().st_mode & 0o077 == 0, name
    # Each node issued its own server certificate from it.
    assert (one.data_dir / "ca/server.pem").read_bytes() != (
        two.data_dir / "ca/server.pem"
    ).read_bytes()

    # The database holds the material only encrypted.
    rows = _sealed_rows(pg_url)
    assert sorted(r["name"] for r in rows) == [
        "access-keys.key",
        "admin-token",
        "ca.key",
        "ca.pem",
        "push-address.key",
        "signing.key",
    ]
    token = (one.data_dir / "admin-token").read_text().strip().encode()
    for row in rows:
        assert b"-----BEGIN" not in row["ciphertext"]
        assert token not in row["ciphertext"]

    # A claim made on node one provisions a device through node two; the device's certificate
    # is accepted by node one.
    claim = _create_claim(one, tmp_path / "claim")
    result, files = provision_device(two, claim, tmp_path / "device", serial="c1")
    assert result.thing_name
    device = Client(
        one.mqtt_port, ClientFiles(files.cert, files.key, one.ca_file), result.thing_name
    )
    try:
        device.connect()
    finally:
        device.stop()

    # An access key made with the CLI on node one's machine signs requests node two accepts.
    done = lantern_cli(
        one, "access-keys", "create", "--name", "ops", "--role", "readonly", "--json"
    )
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)
    iot = boto3.client(
        "iot",
        endpoint_url=f"http://127.0.0.1:{two.http_port}",
        region_name="eu-west-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    assert result.thing_name in [t["thingName"] for t in iot.list_things()["things"]]


def test_a_wrong_secret_is_refused(
    tmp_path: Path, cluster_env: dict[str, str], stop_after: list[LanternProcess]
) -> None:
    first = node(tmp_path, "one", cluster_env)
    stop_after.append(first)
    first.start(180)
    wrong = node(tmp_path, "two", cluster_env, LANTERN_CLUSTER__SECRET="not the same secret!")
    stop_after.append(wrong)
    with pytest.raises(RuntimeError) as refused:
        wrong.start(180)
    message = str(refused.value)
    assert "is not the secret this cluster was formed with" in message
    assert "LANTERN_CLUSTER__SECRET" in message
    assert not (tmp_path / "two" / "ca" / "ca.key").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"LANTERN_CLUSTER__SECRET": ""}, "LANTERN_CLUSTER__SECRET"),
        ({"LANTERN_INGEST__STORAGE_BACKEND": "local"}, "configure S3"),
        ({"LANTERN_DATABASE_URL": ""}, "PostgreSQL"),
    ],
    ids=["no-secret", "local-storage", "sqlite"],
)
def test_settings_a_cluster_node_cannot_run_without(
    tmp_path: Path,
    cluster_env: dict[str, str],
    change: dict[str, str],
    expected: str,
    stop_after: list[LanternProcess],
) -> None:
    env = {k: v for k, v in {**cluster_env, **change}.items() if v}
    proc = LanternProcess(tmp_path / "node", env=env)
    stop_after.append(proc)
    with pytest.raises(RuntimeError) as refused:
        proc.start(180)
    assert expected in str(refused.value)
    assert not (tmp_path / "node" / "ca").exists()
