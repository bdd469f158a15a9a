"""Settings of the ingest service: observations, file upload links, FHIR forwarding."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from lantern.settings.base import SectionModel


class IngestSettings(SectionModel):
    """Observations (``$aws/rules/FHIRIngest``), file links (``$aws/rules/CreateFileUploadLink``),
    the FHIR read API and optional forwarding to an external FHIR server."""

    max_observation_bytes: int = Field(
        default=16 * 1024,
        ge=256,
        le=1024 * 1024,
        description="Largest accepted FHIRIngest payload in bytes; bigger ones are rejected.",
    )
    batch_max: int = Field(
        default=512,
        ge=1,
        le=10_000,
        description="Most observations committed in one transaction (group commit).",
    )

    sqlite_writer: Literal["process", "thread"] = Field(
        default="process",
        description="With SQLite, where observations are inserted and committed: 'process' (a "
        "child process, sharing no GIL with the server) or 'thread' (a thread of the server).",
    )

    storage_backend: Literal["local", "s3"] = Field(
        default="local",
        description="Where uploaded files go: 'local' (<data_dir>/files) or 's3'.",
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket (storage_backend = 's3').")
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); default: AWS."
    )
    s3_access_key_id: str | None = Field(
        default=None, description="S3 access key; default: the AWS credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    s3_prefix: str = Field(default="", description="Prefix of every object key in the bucket.")

    s3_direct_upload: bool = Field(
        default=True,
        description="With S3, hand devices an S3 presigned PUT (docs/device-topics.md); "
        "false = devices "
        "upload to Lantern, which streams to S3 and enforces single use and size while uploading.",
    )

    upload_link_ttl_seconds: int = Field(
        default=15 * 60, ge=10, le=7 * 24 * 3600, description="Lifetime of an upload link."
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="Largest file a device may upload."
    )

    fhir_forward_url: str | None = Field(
        default=None,
        description="Base URL of an external FHIR server each stored Observation is sent to "
        "(PUT <base>/Observation/<id>); unset = no forwarding.",
    )
    fhir_forward_token: SecretStr | None = Field(
        default=None, description="Bearer token for the external FHIR server."
    )
    fhir_forward_max_attempts: int = Field(
        default=12, ge=1, le=1000, description="Attempts before a forward is given up."
    )
    fhir_forward_retry_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="First retry delay; doubles up to 10 minutes."
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> IngestSettings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("ingest.storage_backend = 's3' needs ingest.s3_bucket")
        return self
