"""registry: things (with FHIR Device data), certificates, claims, provisioning templates,
ownership tokens, policies, MQTT users; seeds DefaultProvisioningTemplate.

Revision ID: registry_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0001"
down_revision = None
branch_labels = ("registry",)
depends_on = "core_0001"

# Frozen copy (a migration must not change when the code does). The thing name is the serial
# number plus the first 12 hex digits of the certificate id: valid ([a-zA-Z0-9:_-], <= 128),
# unique per certificate, so one device cannot take over another's thing by claiming its serial.
DEFAULT_TEMPLATE_BODY = {
    "Parameters": {
        "SerialNumber": {"Type": "String", "AllowedPattern": "^[A-Za-z0-9:_-]{1,64}$"},
        "Manufacturer": {"Type": "String", "MaxLength": 256},
        "Name": {"Type": "String", "MaxLength": 256},
        "Model": {"Type": "String", "MaxLength": 256},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Fn::Sub": "${SerialNumber}-${Lantern::Certificate::ShortId}"},
                "AttributePayload": {},
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                "Status": "ACTIVE",
            },
        },
    },
    "DeviceConfiguration": {},
}


def upgrade() -> None:
    op.create_table(
        "things",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("template_name", sa.String(36), nullable=True),
        sa.Column("serial_number", sa.String(256), nullable=True),
        sa.Column("manufacturer", sa.String(256), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("device_name", sa.String(256), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_things_project", "things", ["project"])
    op.create_table(
        "certificates",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column(
            "thing_name",
            sa.String(128),
            sa.ForeignKey("things.name", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_certificates_thing_name", "certificates", ["thing_name"])
    op.create_table(
        "claims",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "certificate_id",
            sa.String(64),
            sa.ForeignKey("certificates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("allowed_templates", sa.JSON, nullable=False),
        sa.Column("device_limit", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.UniqueConstraint("certificate_id", name="uq_claims_certificate_id"),
    )
    templates = op.create_table(
        "provisioning_templates",
        sa.Column("name", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("pre_provisioning_hook_url", sa.String(2048), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ownership_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "certificate_id",
            sa.String(64),
            sa.ForeignKey("certificates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "claim_id",
            sa.String(36),
            sa.ForeignKey("claims.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
        sa.Column("thing_name", sa.String(128), nullable=True),
    )
    op.create_index("ix_ownership_tokens_certificate_id", "ownership_tokens", ["certificate_id"])
    op.create_index("ix_ownership_tokens_claim_id", "ownership_tokens", ["claim_id"])
    op.create_index("ix_ownership_tokens_expires_at", "ownership_tokens", ["expires_at"])
    op.create_table(
        "policies",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("project_wide", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "certificate_policies",
        sa.Column(
            "certificate_id",
            sa.String(64),
            sa.ForeignKey("certificates.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "policy_name",
            sa.String(128),
            sa.ForeignKey("policies.name", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "mqtt_users",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("policy_name", sa.String(128), sa.ForeignKey("policies.name"), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled_at", sa.Float, nullable=True),
    )
    op.bulk_insert(
        templates,
        [
            {
                "name": "DefaultProvisioningTemplate",
                "project": "default",
                "description": "Registers a device from SerialNumber, Manufacturer, Name, Model.",
                "enabled": True,
                "body": DEFAULT_TEMPLATE_BODY,
                "pre_provisioning_hook_url": None,
                "version": 1,
                "created_at": 0.0,
                "updated_at": 0.0,
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "mqtt_users",
        "certificate_policies",
        "policies",
        "ownership_tokens",
        "provisioning_templates",
        "claims",
        "certificates",
        "things",
    ):
        op.drop_table(table)
