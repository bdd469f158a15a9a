"""Tables of the ingest service: observations (with search columns), their codes, FHIR read
tokens, upload links (single use), stored files and the FHIR forwarding outbox.

Thing names are not foreign keys to ``things``: the registry lives on another migration branch,
and an observation must outlive a thing that is later deleted.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from lantern.store.schema.base import metadata

observations = Table(
    "observations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("thing_name", String(128), nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("effective_at", Float, nullable=False),  # epoch seconds, for date= search and _sort
    Column("issued_at", Float, nullable=False),
    Column("resource", Text, nullable=False),  # the FHIR Observation as JSON
    Index("ix_observations_project_effective", "project", "effective_at"),
    Index("ix_observations_thing_effective", "project", "thing_name", "effective_at"),
    Index("ix_observations_patient_effective", "project", "patient_id", "effective_at"),
)

# One row per coding of an observation, so code=<system>|<code> matches any of them.
observation_codes = Table(
    "observation_codes",
    metadata,
    Column(
        "observation_id",
        String(64),
        ForeignKey("observations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("system", String(512), nullable=False),
    Column("code", String(256), nullable=False),
    Index("ix_observation_codes_lookup", "project", "system", "code"),
)

fhir_tokens = Table(
    "fhir_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("scope", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    # SHA-256 hex of the secret (the token has 256 random bits, so no slow hash is needed).
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

upload_links = Table(
    "upload_links",
    metadata,
    Column("id", String(64), primary_key=True),  # the fileId given to the device
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("thing_name", String(128), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("backend", String(8), nullable=False),  # "local" | "s3"
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # Set when an upload starts; a second PUT finds it set and is refused (single use).
    Column("used_at", Float, nullable=True),
    # "pending" | "stored" | "failed" | "expired" (S3 links are settled by a reconciler).
    Column("state", String(16), nullable=False),
    Index("ix_upload_links_state", "state", "expires_at"),
)

files = Table(
    "files",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("thing_name", String(128), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("backend", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_files_thing", "project", "thing_name", "created_at"),
)

fhir_outbox = Table(
    "fhir_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("observation_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", String(512), nullable=True),
    # "pending" | "delivered" | "failed" (gave up after the configured attempts)
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_fhir_outbox_due", "state", "next_attempt_at"),
)
