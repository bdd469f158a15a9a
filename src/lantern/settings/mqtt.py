"""Settings of the MQTT server and its listeners."""

from __future__ import annotations

from pydantic import Field, model_validator

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
    # Abuse limits and protocol maxima (see README, "MQTT").
    max_connections: int = Field(
        default=100_000, ge=1, description="Open connections per listener; more are closed."
    )
    max_packet_size: int = Field(
        default=131_072,
        ge=64,
        le=268_435_460,
        description="Largest MQTT packet accepted, in bytes (128 KB like AWS IoT Core).",
    )
    max_inflight: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="Outbound unacked QoS 1/2 messages per client (caps its Receive Maximum).",
    )
    receive_maximum: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="Inbound unacknowledged QoS 1/2 messages per client (advertised in CONNACK).",
    )
    max_queued_messages: int = Field(
        default=1000,
        ge=0,
        description="QoS 1/2 messages queued per session; over it the newest is dropped.",
    )
    max_session_bytes: int = Field(
        default=16 << 20,
        ge=64,
        description="Bytes (payload + topic) of QoS 1/2 messages one session holds, queued and "
        "in flight together; over it the newest message is dropped (counted). At least "
        "max_packet_size; the default leaves room for a full window (max_inflight) of "
        "128 KB messages.",
    )
    max_queued_bytes_total: int = Field(
        default=256 << 20,
        ge=1,
        description="Bytes of QoS 1/2 messages in all session queues together; over it new "
        "messages to queues are dropped (counted).",
    )
    max_retained_messages: int = Field(
        default=100_000,
        ge=0,
        description="Retained messages kept (one per topic); new ones over it are refused.",
    )
    max_retained_bytes: int = Field(
        default=256 << 20,
        ge=0,
        description="Bytes (payload + topic) of all retained messages; a retained message over "
        "it is refused (a refused replacement also drops the topic's previous one).",
    )
    max_subscriptions_per_connection: int = Field(
        default=100, ge=1, description="Subscriptions per session; more get SUBACK 0x97/0x80."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds from connection to CONNECT before closing."
    )
    handshake_timeout: float = Field(
        default=10.0, gt=0, description="Seconds allowed for the TLS / WebSocket handshake."
    )
    log_refusals_per_minute: int = Field(
        default=10,
        ge=0,
        description="INFO lines about refused TLS handshakes and CONNECTs, per reason per "
        "minute (then one 'suppressed K' line); 0 logs none.",
    )
    keepalive_max: int = Field(
        default=1200,
        ge=1,
        le=65535,
        description="Keep alive cap in seconds (0 or larger values get this, as AWS does).",
    )
    session_expiry_max: int = Field(
        default=604_800,
        ge=0,
        description="Longest session expiry (s); also the life of 3.1.1 persistent sessions.",
    )
    topic_alias_maximum: int = Field(
        default=8, ge=0, le=65535, description="Topic aliases a client may use (MQTT 5)."
    )

    @model_validator(mode="after")
    def _session_bytes_fit_a_packet(self) -> MQTTSettings:
        if self.max_session_bytes < self.max_packet_size:
            raise ValueError(
                f"mqtt.max_session_bytes ({self.max_session_bytes}) must be at least "
                f"mqtt.max_packet_size ({self.max_packet_size})"
            )
        return self
