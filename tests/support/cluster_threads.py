"""In-process clusters for the MQTT server scenarios: MQTT servers (each on its own loop
thread, like :class:`support.mqtt_server.ServerThread`) joined over the local NATS under a
cluster name of their own."""

from __future__ import annotations

import secrets
from typing import Self

from lantern.cluster.mqtt_node import ClusterMQTT
from lantern.settings.cluster import ClusterSettings
from support.cluster import NATS_URL, _drop_buckets, _nats_reachable
from support.mqtt_server import MQTTTestPKI, ServerThread


class ClusterNodeThread(ServerThread):
    def __init__(self, pki: MQTTTestPKI, name: str) -> None:
        super().__init__(pki)
        self.cluster = ClusterMQTT(ClusterSettings(nats_url=NATS_URL), name, self.server)

    def start(self) -> Self:
        self._thread.start()
        try:
            self.run(self.cluster.start())
            self.run(self.server.start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.loop.is_running():
            try:
                self.run(self.server.stop())
                self.run(self.cluster.stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class ClusterThreads:
    """``size`` nodes of a fresh cluster; a context manager (stops them, drops the buckets)."""

    def __init__(self, pki: MQTTTestPKI, size: int) -> None:
        _nats_reachable()
        self.name = f"mqtt_{secrets.token_hex(6)}"
        self.pki = pki
        self.size = size
        self.nodes: list[ServerThread] = []

    def __enter__(self) -> list[ServerThread]:
        try:
            for _ in range(self.size):
                self.nodes.append(ClusterNodeThread(self.pki, self.name).start())
        except BaseException:
            self.__exit__()
            raise
        return self.nodes

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.stop()
        _drop_buckets(self.name)
