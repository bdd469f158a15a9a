"""Fixtures of the cluster platform tests: real `lantern serve` nodes on a fresh PostgreSQL
database, the shared NATS server (127.0.0.1:4222, or LANTERN_TEST_NATS_URL) and moto's S3."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ingest.s3 import MotoS3, moto_s3  # noqa: F401 - session fixture
from support.postgres import fresh_postgres_database
from support.process import LanternProcess

NATS_URL = os.environ.get("LANTERN_TEST_NATS_URL", "nats://127.0.0.1:4222")
SECRET = "correct horse battery staple"


def _nats_reachable() -> None:
    host, port = NATS_URL.rsplit("//", 1)[-1].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"NATS not reachable at {NATS_URL} ({exc})")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped after, even with nodes still connected)."""
    loop = asyncio.new_event_loop()
    manager = fresh_postgres_database()
    try:
        url = loop.run_until_complete(manager.__aenter__())
        yield url
        loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture
def cluster_env(pg_url: str, moto_s3: MotoS3) -> dict[str, str]:  # noqa: F811
    """What every node of one test's cluster is configured with."""
    _nats_reachable()
    s3 = moto_s3.config("cluster")
    return {
        "LANTERN_DATABASE_URL": pg_url,
        "LANTERN_CLUSTER__NATS_URL": NATS_URL,
        "LANTERN_CLUSTER__SECRET": SECRET,
        "LANTERN_INGEST__STORAGE_BACKEND": "s3",
        "LANTERN_INGEST__S3_BUCKET": s3.bucket,
        "LANTERN_INGEST__S3_ENDPOINT_URL": str(s3.endpoint_url),
        "LANTERN_INGEST__S3_ACCESS_KEY_ID": str(s3.access_key_id),
        "LANTERN_INGEST__S3_SECRET_ACCESS_KEY": str(s3.secret_access_key),
        "LANTERN_INGEST__S3_REGION": s3.region,
        "LANTERN_JOBS__TIMER_TICK_SECONDS": "0.5",
    }


def node(tmp_path: Path, name: str, env: dict[str, str], **extra: str) -> LanternProcess:
    return LanternProcess(tmp_path / name, env={**env, **extra})


def start_all(nodes: list[LanternProcess], timeout: float = 180.0) -> list[LanternProcess]:
    """Start every node at the same time; returns once all are ready (generous: the test
    machine is shared with other suites)."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda n: n.start(timeout), nodes))
    return nodes


@pytest.fixture
def stop_after() -> Iterator[list[LanternProcess]]:
    """Nodes appended here are stopped (or killed) at the end of the test."""
    started: list[LanternProcess] = []
    yield started
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop(timeout=15)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
