"""A listener that cannot bind its port: one line naming the port and the setting to change."""

from __future__ import annotations

import errno as errnos
import os

from lantern.errors import ConfigError

__all__ = ["LISTENER_SETTINGS", "PortUnavailable"]

#: Listener name -> (what it is, the setting, its environment variable, its ``serve`` flag).
LISTENER_SETTINGS: dict[str, tuple[str, str, str, str | None]] = {
    "http": ("HTTP", "http.port", "LANTERN_HTTP__PORT", "--http-port"),
    "mqtts": ("MQTT (mTLS)", "mqtt.port", "LANTERN_MQTT__PORT", "--mqtt-port"),
    "mqtt-alpn": ("MQTT (mTLS+ALPN)", "mqtt.alpn_port", "LANTERN_MQTT__ALPN_PORT", None),
    "tcp": ("MQTT (plain TCP)", "mqtt.tcp_port", "LANTERN_MQTT__TCP_PORT", None),
    "ws": ("MQTT (WebSocket)", "mqtt.ws_port", "LANTERN_MQTT__WS_PORT", None),
}


class PortUnavailable(ConfigError):
    """A listener's port cannot be bound (in use, or privileged); the message names the port
    and the setting that moves it."""

    def __init__(self, listener: str, host: str, port: int, errno: int | None) -> None:
        what, setting, env, flag = LISTENER_SETTINGS[listener]
        if errno == errnos.EADDRINUSE:
            problem = "is already in use (another Lantern, or another program?)"
        else:
            problem = f"cannot be bound: {os.strerror(errno) if errno else 'unknown error'}"
        how = f"{env} or {flag}" if flag else env
        super().__init__(
            f"{what} port {port} on {host} {problem}; set {setting} ({how}) to a free port"
        )
        self.listener, self.port = listener, port
