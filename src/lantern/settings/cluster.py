"""Settings of clustering: several ``lantern serve`` nodes acting as one platform."""

from __future__ import annotations

from pydantic import Field, SecretStr

from lantern.settings.base import SectionModel


class ClusterSettings(SectionModel):
    """How a node joins a cluster (PostgreSQL ``database_url`` plus NATS with JetStream)."""

    nats_url: str | None = Field(
        default=None,
        description="NATS server URL(s), comma separated (nats://host:4222). Set together with "
        "a PostgreSQL database_url, it makes this node a member of a cluster.",
    )
    nats_user: str | None = Field(default=None, description="NATS user name, if required.")
    nats_password: SecretStr | None = Field(default=None, description="NATS password.")
    nats_token: SecretStr | None = Field(default=None, description="NATS token, if required.")
    nats_creds_file: str | None = Field(
        default=None, description="NATS credentials (.creds) file, if required."
    )
    nats_tls_ca: str | None = Field(
        default=None, description="CA file verifying the NATS server's TLS certificate."
    )
    node_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="This node's identity in the cluster; default: generated and kept in the "
        "data directory.",
    )
    drain_seconds: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="On SIGTERM, how long the node answers /readyz 503 (draining) and refuses "
        "new MQTT connections before it disconnects its clients (DISCONNECT 0x8B); set it to "
        "the time your load balancer takes to mark a node down (HAProxy inter x fall).",
    )
    secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Passphrase every node of a cluster shares; it encrypts the shared platform "
        "material (CA key, signing keys) kept in PostgreSQL.",
    )


__all__ = ["ClusterSettings"]
