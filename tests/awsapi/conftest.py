"""A running ``lantern serve`` with access keys made by ``lantern access-keys create --json``,
and boto3 clients pointed at it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from support.process import LanternProcess

REGION = "eu-central-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    data_dir = tmp_path_factory.mktemp("aws") / "lantern-data"
    with LanternProcess(data_dir) as proc:
        yield proc


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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def admin_key(server: LanternProcess) -> dict[str, str]:
    return create_key(server, "admin", "admin")


@pytest.fixture(scope="module")
def iot(client_for: Factory, admin_key: dict[str, str]) -> Any:
    return client_for("iot", admin_key)


def data_dir_of(server: LanternProcess) -> Path:
    return server.data_dir
