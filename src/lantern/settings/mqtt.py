"""Settings of the MQTT server and its listeners."""

from __future__ import annotations

from pydantic import Field

from lantern.settings.base import SectionModel


class MQTTSettings(SectionModel):
    """Listeners and limits of the MQTT server."""

    host: str = Field(default="0.0.0.0", description="Bind address of the MQTT listeners.")
    port: int = Field(default=8883, ge=0, le=65535, description="mTLS listener; 0 = free port.")
    alpn_port: int | None = Field(
        default=None, ge=0, le=65535, description="Optional mTLS listener (e.g. 443) with ALPN."
    )
    tcp_port: int | None = Field(
        default=None, ge=0, le=65535, description="Optional plain TCP listener (off by default)."
    )
    ws_port: int | None = Field(
        default=None, ge=0, le=65535, description="Optional WebSocket listener on /mqtt (off)."
    )
    public_host: str = Field(
        default="localhost", description="Host name devices use (printed, used in examples)."
    )
