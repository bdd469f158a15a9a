"""Fixtures of the cluster MQTT tests: the S3 every cluster node needs (moto's)."""

from __future__ import annotations

import pytest

from ingest.s3 import MotoS3, moto_s3  # noqa: F401 - session fixture
from support.cluster import s3_settings


@pytest.fixture(scope="module")
def s3_env(moto_s3: MotoS3) -> dict[str, str]:  # noqa: F811
    """LANTERN_INGEST__* of a fresh bucket (a cluster refuses local file storage)."""
    return s3_settings(moto_s3.config("clustermq"))
