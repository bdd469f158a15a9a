"""Configuration of :class:`lantern.mqtt.server.MQTTServer`: listeners, TLS files, limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MQTTServerConfig"]


@dataclass(frozen=True, slots=True)
class MQTTServerConfig:
    """Listeners (a port of 0 binds a free port; None = listener off) and abuse limits.

    Listener names (``ConnectInfo.listener``, ``MQTTServer.ports``): ``mqtts`` (mTLS, default
    8883), ``mqtt-alpn`` (mTLS, e.g. 443 with ALPN ``x-amzn-mqtt-ca``), ``tcp`` (plain, for
    development), ``ws`` (WebSocket on ``/mqtt``, plain, for development). The TLS listeners
    require a client certificate chaining to ``ca_file``.
    """

    host: str = "0.0.0.0"
    tls_port: int | None = 8883
    alpn_port: int | None = None
    tcp_port: int | None = None
    ws_port: int | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    # Abuse limits.
    max_connections: int = 100_000
    max_packet_size: int = 131_072
    max_inflight: int = 100  # outbound QoS 1/2 window per client (caps its Receive Maximum)
    receive_maximum: int = 100  # inbound QoS 1/2 window we advertise
    max_queued_messages: int = 1000  # per session, QoS 1/2; over it the newest is dropped
    # Bytes (payload + topic) of QoS 1/2 messages a session holds queued and in flight, and of
    # all sessions' queues together; over either the newest message is dropped.
    max_session_bytes: int = 16 << 20
    max_queued_bytes_total: int = 256 << 20
    max_subscriptions_per_connection: int = 100
    max_retained_messages: int = 100_000
    max_retained_bytes: int = 256 << 20  # payload + topic of all retained messages
    connect_timeout: float = 10.0  # from TLS established to CONNECT received
    handshake_timeout: float = 10.0  # TLS / WebSocket handshake
    keepalive_max: int = 1200  # 0 or larger client keep alives are capped to this
    session_expiry_max: int = 7 * 24 * 3600  # also the lifetime of 3.1.1 persistent sessions
    topic_alias_maximum: int = 8
    # A subscriber whose unsent bytes exceed this gets no more QoS 0 messages until it drains,
    # and its QoS 1/2 messages wait (unencoded) until then.
    write_buffer_limit: int = 1024 * 1024
    # INFO lines about refused TLS handshakes and CONNECTs, per reason, per minute (0: none).
    log_refusals_per_minute: int = 10
    # Share the listeners' ports with sibling processes (SO_REUSEPORT; ``serve --workers``).
    reuse_port: bool = False

    def __post_init__(self) -> None:
        tls_ports = (self.tls_port, self.alpn_port)
        if any(p is not None for p in tls_ports) and not (
            self.cert_file and self.key_file and self.ca_file
        ):
            raise ValueError("TLS listeners need cert_file, key_file and ca_file")
        if not 0 < self.max_packet_size <= 268_435_460:
            raise ValueError(f"max_packet_size {self.max_packet_size} not in 1..268435460")
        if not 0 < self.receive_maximum <= 65535 or not 0 < self.max_inflight <= 65535:
            raise ValueError("receive_maximum and max_inflight must be in 1..65535")
        if not 0 <= self.topic_alias_maximum <= 65535:
            raise ValueError("topic_alias_maximum must be in 0..65535")
        if not 0 < self.keepalive_max <= 65535:
            raise ValueError("keepalive_max must be in 1..65535")
        if self.max_session_bytes < self.max_packet_size:
            raise ValueError(
                f"max_session_bytes {self.max_session_bytes} is below max_packet_size "
                f"{self.max_packet_size}: the largest messages could never be delivered"
            )
        if self.max_queued_bytes_total < 1:
            raise ValueError("max_queued_bytes_total must be >= 1")
