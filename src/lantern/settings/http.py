"""Settings of the HTTP app (admin, FHIR, uploads and downloads, /push)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from lantern.settings.base import SectionModel


class HTTPSettings(SectionModel):
    """Where the HTTP app listens and how others reach it."""

    host: str = Field(default="127.0.0.1", description="Bind address of the HTTP app.")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    public_url: str | None = Field(
        default=None,
        description="Base URL devices and callers use (signed links); default http://<host>:<port>.",
    )
    tls: bool = Field(
        default=False, description="Serve HTTPS with the platform's server certificate."
    )
    request_read_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's headers (and, with http.tls, to "
        "finish the TLS handshake); a body that stops growing for this long is cut too. "
        "Then 408 and the connection closes.",
    )
    max_connections: int = Field(
        default=10_000,
        ge=1,
        description="Open HTTP connections; more get 503 and are closed. Unless set, lowered "
        "at startup to fit the file descriptor limit beside the MQTT listeners.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="When set, GET /metrics requires Authorization: Bearer <this token>.",
    )
