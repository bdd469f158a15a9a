"""moto's S3 server on a free loopback port, with a bucket per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lantern.store.objects import S3Config
from support.net import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass
class MotoS3:
    endpoint_url: str

    def config(self, prefix: str) -> S3Config:
        bucket = f"{prefix}-{secrets.token_hex(4)}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        client.create_bucket(Bucket=bucket)
        return S3Config(
            bucket=bucket,
            region="us-east-1",
            endpoint_url=self.endpoint_url,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
        )


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
