"""Clusters of real ``lantern serve`` processes on one PostgreSQL database and the local NATS.

Every node has an anonymous plain-TCP MQTT listener (development only) for independent paho
clients, and the mTLS listener. Nodes share the CA and keys through PostgreSQL (the cluster
secret below) and store files in one bucket of a moto S3 server, as a cluster must.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lantern.cluster.bus import cluster_name
from support.net import free_port, wait_for_port
from support.postgres import fresh_postgres_database
from support.process import LanternProcess

NATS_URL = os.environ.get("LANTERN_TEST_NATS_URL", "nats://127.0.0.1:4222")


@dataclass
class Node:
    proc: LanternProcess
    tcp_port: int

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric on this node's /metrics."""
        text = httpx.get(f"{self.proc.http_url}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics of {self.proc.http_url}")


def _nats_reachable() -> None:
    import nats

    async def probe() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        await nc.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"NATS not reachable at {NATS_URL} ({exc}); set LANTERN_TEST_NATS_URL")


def _drop_buckets(name: str) -> None:
    import nats

    async def drop() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        js = nc.jetstream()
        for suffix in ("retained", "clients"):
            with suppress(Exception):
                await js.delete_key_value(f"lantern-{name}-{suffix}")
        await nc.close()

    asyncio.run(drop())


@contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for one cluster (its URL), dropped afterwards."""
    ctx = fresh_postgres_database()
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(ctx.__aenter__())
    finally:
        loop.run_until_complete(ctx.__aexit__(None, None, None))
        loop.close()


def _moto_s3(stack: ExitStack) -> dict[str, str]:
    """A moto S3 server with one bucket for the cluster's files, as node settings."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="cluster")
    return {
        "LANTERN_INGEST__STORAGE_BACKEND": "s3",
        "LANTERN_INGEST__S3_BUCKET": "cluster",
        "LANTERN_INGEST__S3_ENDPOINT_URL": endpoint,
        "LANTERN_INGEST__S3_ACCESS_KEY_ID": "testing",
        "LANTERN_INGEST__S3_SECRET_ACCESS_KEY": "testing",
    }


@contextmanager
def cluster(root: Path, size: int, env: dict[str, str] | None = None) -> Iterator[list[Node]]:
    """``size`` nodes of one cluster, started one after the other."""
    _nats_reachable()
    with database() as url, ExitStack() as stack:
        name = cluster_name(url)
        stack.callback(_drop_buckets, name)
        s3 = _moto_s3(stack)
        nodes: list[Node] = []
        for i in range(size):
            data = root / f"node{i}"
            tcp_port = free_port()
            node_env = {
                "LANTERN_DATABASE_URL": url,
                "LANTERN_CLUSTER__NATS_URL": NATS_URL,
                "LANTERN_MQTT__TCP_PORT": str(tcp_port),
                "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
                "LANTERN_PROVISIONING__KEY_TYPE": "ec-p256",
                "LANTERN_CLUSTER__SECRET": "cluster tests' shared secret",
                **s3,
                **(env or {}),
            }
            proc = LanternProcess(data, env=node_env)
            stack.callback(proc.__exit__)
            proc.start(timeout=90)  # several nodes start on a shared, busy machine
            wait_for_port(tcp_port)
            nodes.append(Node(proc, tcp_port))
        yield nodes
