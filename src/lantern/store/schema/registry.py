"""The device registry: things, certificates, claims, provisioning templates, ownership tokens,
policies and MQTT user accounts (Alembic branch ``registry``).

``things`` and ``certificates`` are shared with other services (layers: docs/architecture.md); the
other tables belong to provisioning and the gateway. Lantern never stores a device's private
key: ``certificates.pem`` is the public certificate only. Secrets (ownership tokens, MQTT
passwords) are stored as hashes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
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

__all__ = [
    "certificate_policies",
    "certificates",
    "claims",
    "mqtt_users",
    "ownership_tokens",
    "policies",
    "provisioning_templates",
    "things",
]

things = Table(
    "things",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("template_name", String(36), nullable=True),
    # The FHIR Device data, from the RegisterThing parameters SerialNumber, Manufacturer,
    # Model and Name.
    Column("serial_number", String(256), nullable=True),
    Column("manufacturer", String(256), nullable=True),
    Column("model", String(256), nullable=True),
    Column("device_name", String(256), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
)
Index("ix_things_project", things.c.project)
# The gateway polls for things created since a time (lantern.gateway.things).
Index("ix_things_created_at", things.c.created_at)

certificates = Table(
    "certificates",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex of the DER
    Column("pem", Text, nullable=False),
    Column("kind", String(8), nullable=False),  # 'claim' | 'device'
    Column("status", String(24), nullable=False),  # PENDING_ACTIVATION|ACTIVE|INACTIVE|REVOKED
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column(
        "thing_name",
        String(128),
        ForeignKey("things.name", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_certificates_thing_name", certificates.c.thing_name)

claims = Table(
    "claims",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "certificate_id",
        String(64),
        ForeignKey("certificates.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("allowed_templates", JSON, nullable=False),  # list of template names
    Column("device_limit", Integer, nullable=True),  # None = unlimited
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

provisioning_templates = Table(
    "provisioning_templates",
    metadata,
    Column("name", String(36), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("enabled", Boolean, nullable=False),
    # AWS-style template body: Parameters, Mappings, Resources, DeviceConfiguration.
    Column("body", JSON, nullable=False),
    Column("pre_provisioning_hook_url", String(2048), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

ownership_tokens = Table(
    "ownership_tokens",
    metadata,
    # sha256 hex of the token: a database dump does not let anyone register a certificate.
    Column("token_hash", String(64), primary_key=True),
    Column(
        "certificate_id",
        String(64),
        ForeignKey("certificates.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The claim that created the certificate; also the record of which claim provisioned it.
    Column("claim_id", String(36), ForeignKey("claims.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("thing_name", String(128), nullable=True),  # set when used
)
Index("ix_ownership_tokens_certificate_id", ownership_tokens.c.certificate_id)
Index("ix_ownership_tokens_claim_id", ownership_tokens.c.claim_id)
Index("ix_ownership_tokens_expires_at", ownership_tokens.c.expires_at)

policies = Table(
    "policies",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("document", JSON, nullable=False),  # {"Version": ..., "Statement": [...]}
    # A project policy applies to every device connection of its project.
    Column("project_wide", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

certificate_policies = Table(
    "certificate_policies",
    metadata,
    Column(
        "certificate_id",
        String(64),
        ForeignKey("certificates.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "policy_name",
        String(128),
        ForeignKey("policies.name", ondelete="CASCADE"),
        primary_key=True,
    ),
)

mqtt_users = Table(
    "mqtt_users",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("password_hash", String(256), nullable=False),  # scrypt$n$r$p$salt$hash
    Column("policy_name", String(128), ForeignKey("policies.name"), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
)
