"""Clusters of real ``lantern serve`` processes on one PostgreSQL database and the local NATS.

Every node has an anonymous plain-TCP MQTT listener (development only) for independent paho
clients, and the mTLS listener. The nodes share the platform material (CA, admin token) through
PostgreSQL with one ``cluster.secret``, and files through S3 (``s3_env``: moto's, see
tests/cluster/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lantern.cluster.bus import cluster_name
from support.net import free_port, wait_for_port
from support.postgres import fresh_postgres_database
from support.process import LanternProcess

NATS_URL = os.environ.get("LANTERN_TEST_NATS_URL", "nats://127.0.0.1:4222")
SECRET = "correct horse battery staple"


def s3_settings(s3: Any) -> dict[str, str]:
    """The LANTERN_INGEST__* variables of an S3 configuration (``ingest.s3.MotoS3.config``)."""
    return {
        "LANTERN_INGEST__STORAGE_BACKEND": "s3",
        "LANTERN_INGEST__S3_BUCKET": s3.bucket,
        "LANTERN_INGEST__S3_ENDPOINT_URL": str(s3.endpoint_url),
        "LANTERN_INGEST__S3_ACCESS_KEY_ID": str(s3.access_key_id),
        "LANTERN_INGEST__S3_SECRET_ACCESS_KEY": str(s3.secret_access_key),
        "LANTERN_INGEST__S3_REGION": s3.region,
    }


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


@contextmanager
def cluster(root: Path, size: int, env: dict[str, str]) -> Iterator[list[Node]]:
    """``size`` nodes of one cluster, started one after the other; ``env`` has at least the
    S3 settings (:func:`s3_settings`)."""
    _nats_reachable()
    with database() as url, ExitStack() as stack:
        name = cluster_name(url)
        stack.callback(_drop_buckets, name)
        nodes: list[Node] = []
        for i in range(size):
            data = root / f"node{i}"
            node_env = {
                "LANTERN_DATABASE_URL": url,
                "LANTERN_CLUSTER__NATS_URL": NATS_URL,
                "LANTERN_CLUSTER__SECRET": SECRET,
                "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
                "LANTERN_PROVISIONING__KEY_TYPE": "ec-p256",
                **env,
            }
            # The plain-TCP port is picked (and picked again if taken) by LanternProcess.
            proc = LanternProcess(data, env=node_env, tcp_port=free_port())
            stack.callback(proc.__exit__)
            proc.start(timeout=90)  # several nodes start on a shared, busy machine
            assert proc.tcp_port is not None
            wait_for_port(proc.tcp_port)
            nodes.append(Node(proc, proc.tcp_port))
        try:
            yield nodes
        except BaseException:
            _print_logs(nodes)  # pytest shows them with the failure
            raise


def _print_logs(nodes: list[Node]) -> None:
    for i, node in enumerate(nodes):
        tail = node.proc.current_output().splitlines()[-60:]
        print(f"----- node{i} (mqtt {node.tcp_port}, {node.proc.http_url}) -----")
        print("\n".join(tail))
