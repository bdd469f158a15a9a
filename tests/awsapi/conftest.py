"""A running ``lantern serve`` with access keys made by ``lantern access-keys create --json``,
and boto3 clients pointed at it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import boto3
import pytest
from awsiot import mqtt5_client_builder
from botocore.config import Config

from support.process import LanternProcess

REGION = "eu-central-1"
TIMEOUT = 15.0


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    """One server for the package (each test uses its own names); generous start time: the
    test machine may be loaded."""
    data_dir = tmp_path_factory.mktemp("aws") / "lantern-data"
    proc = LanternProcess(data_dir).start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


def cli(server: LanternProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args],
        env=server.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def create_key(server: LanternProcess, name: str, role: str) -> dict[str, str]:
    done = cli(server, "access-keys", "create", "--name", name, "--role", role, "--json")
    assert done.returncode == 0, done.stderr
    keys: dict[str, str] = json.loads(done.stdout)
    return keys


Factory = Callable[..., Any]


@pytest.fixture(scope="package")
def client_for(server: LanternProcess) -> Factory:
    def make(service: str, key: dict[str, str], region: str = REGION) -> Any:
        return boto3.client(
            service,
            endpoint_url=server.http_url,
            region_name=region,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )

    return make


@pytest.fixture(scope="package")
def admin_key(server: LanternProcess) -> dict[str, str]:
    return create_key(server, "admin", "admin")


@pytest.fixture(scope="package")
def iot(client_for: Factory, admin_key: dict[str, str]) -> Any:
    return client_for("iot", admin_key)


def data_dir_of(server: LanternProcess) -> Path:
    return server.data_dir


def sdk_device(server: LanternProcess, thing: str, cert: Path, key: Path) -> dict[str, Any]:
    """A started MQTT 5 client and the futures of its lifecycle."""
    events: dict[str, Future[Any]] = {
        name: Future() for name in ("connected", "failed", "disconnected", "stopped", "message")
    }

    def once(name: str) -> Any:
        return lambda e: events[name].done() or events[name].set_result(e)

    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost",
        port=server.mqtt_port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(server.ca_file),
        client_id=thing,
        clean_session=True,
        on_lifecycle_connection_success=once("connected"),
        on_lifecycle_connection_failure=once("failed"),
        on_lifecycle_disconnection=once("disconnected"),
        on_lifecycle_stopped=once("stopped"),
        on_publish_received=lambda d: (
            events["message"].done() or events["message"].set_result(d.publish_packet)
        ),
    )
    client.start()
    return {"client": client, **events}
