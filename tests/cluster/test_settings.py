"""A cluster node whose NATS cannot be reached stops at start and says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cluster import database
from support.net import free_port
from support.process import LanternProcess

pytestmark = pytest.mark.postgres


def test_unreachable_nats_stops_serve_with_what_to_fix(tmp_path: Path) -> None:
    with database() as url:
        nowhere = f"nats://127.0.0.1:{free_port()}"
        proc = LanternProcess(
            tmp_path / "data",
            env={"LANTERN_DATABASE_URL": url, "LANTERN_CLUSTER__NATS_URL": nowhere},
        )
        with pytest.raises(RuntimeError) as failed:
            proc.start(timeout=90)
        message = str(failed.value)
        assert f"cluster.nats_url: cannot use NATS at {nowhere}" in message
        assert "nats-server -js" in message
