"""The AWS IoT compatible control plane inside ``lantern serve``: access keys (sealed with the
key file ``access-keys.key`` of the data directory, created 0600 at start) and the ``iot`` /
iot-data routes on the HTTP listener."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fastapi import APIRouter

from lantern.api.app import UnmatchedHandler
from lantern.awsapi.app import build_aws_router, build_iot, build_iot_data
from lantern.awsapi.common import AwsDeps
from lantern.awsapi.unsupported import UnsupportedOperations, service_model
from lantern.iam.keys import AccessKeys
from lantern.iam.secretbox import data_dir_box
from lantern.iam.verifier import SignatureVerifier
from lantern.mqtt.broker import Message
from lantern.mqtt.server import MQTTServer
from lantern.runtime.component import Component, Platform
from lantern.runtime.gateway import GatewayComponent
from lantern.runtime.jobs import JobsComponent

__all__ = ["AwsApiComponent"]


class ServerBroker:
    """iot-data's view of the MQTT server: publish as the server, read retained messages."""

    def __init__(self, server: MQTTServer) -> None:
        self.server = server

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.server.publish(topic, payload, qos=qos, retain=retain)

    def _live(self) -> list[Message]:
        return self.server.broker.retained.matching("#", self.server.loop.time())

    def retained(self, topic: str) -> tuple[bytes, int] | None:
        for message in self.server.broker.retained.matching(topic, self.server.loop.time()):
            return message.payload, message.qos
        return None

    def retained_topics(self) -> list[tuple[str, int, int]]:
        return sorted((m.topic, len(m.payload), m.qos) for m in self._live())


class AwsApiComponent(Component):
    name = "awsapi"

    def __init__(
        self,
        platform: Platform,
        gateway: GatewayComponent,
        server: MQTTServer,
        jobs: JobsComponent | None = None,
    ) -> None:
        super().__init__(platform)
        # On a cluster the key file is shared material (runtime/cluster_material.py): every
        # node holds the same file, so every node opens the same rows.
        self.box = data_dir_box(platform.data_dir)
        self.keys = AccessKeys(platform.db, self.box)
        self.verifier = SignatureVerifier(self.keys)
        self.gateway = gateway
        self.deps = AwsDeps(
            platform.db,
            platform.ca,
            mqtt_endpoint=self._mqtt_endpoint,
            http_endpoint=lambda: platform.http_base_url,
            kick=self._kick,
            jobs=None if jobs is None else jobs.jobs,
            jobs_changed=None if jobs is None else jobs.timer.tick,
        )
        self.iot = build_iot(self.deps)
        self.data = build_iot_data(ServerBroker(server))

    def _kick(self, certificate_ids: Collection[str]) -> int:
        watcher = self.gateway.watcher
        return 0 if watcher is None else watcher.kick(certificate_ids)

    def _mqtt_endpoint(self) -> str:
        base = self.platform.http_base_url
        host = base.split("://", 1)[-1].rsplit(":", 1)[0]
        return f"{host}:{self.platform.settings.mqtt.port}"

    def routers(self) -> Sequence[APIRouter]:
        account = self.platform.settings.aws.account_id
        return (build_aws_router([self.iot, self.data], self.verifier, account),)

    def unmatched_handlers(self) -> Sequence[UnmatchedHandler]:
        # A signed call of an operation Lantern lacks: an AWS error botocore can read.
        return (
            UnsupportedOperations(
                [self.iot.model, self.data.model, service_model("iot-jobs-data")], self.verifier
            ),
        )

    async def start(self) -> None:
        self.box.source.key()  # creates access-keys.key (0600) on the first start

    def describe(self) -> list[str]:
        return [
            f"AWS IoT API      {self.platform.http_base_url} (SigV4; keys from "
            "`lantern access-keys create --name N --role admin`)",
        ]
