"""A cluster node whose NATS cannot be reached stops at start and says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cluster import SECRET, database
from support.net import free_port
from support.process import LanternProcess

pytestmark = pytest.mark.postgres


def test_unreachable_nats_stops_serve_with_what_to_fix(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    with database() as url:
        nowhere = f"nats://127.0.0.1:{free_port()}"
        proc = LanternProcess(
            tmp_path / "data",
            env={
                "LANTERN_DATABASE_URL": url,
                "LANTERN_CLUSTER__NATS_URL": nowhere,
                "LANTERN_CLUSTER__SECRET": SECRET,
                **s3_env,
            },
        )
        with pytest.raises(RuntimeError) as failed:
            proc.start(timeout=90)
        message = str(failed.value)
        # Whichever part of the node meets the missing NATS first names it and the setting.
        assert nowhere.removeprefix("nats://") in message
        assert "cluster.nats_url" in message
