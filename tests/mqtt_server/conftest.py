"""Fixtures: one temporary CA per session, an in-process MQTT server per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.mqtt_server import Client, MQTTTestPKI, ServerThread


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> MQTTTestPKI:
    return MQTTTestPKI.create(tmp_path_factory.mktemp("mqtt-pki"))


@pytest.fixture
def make_server(pki: MQTTTestPKI) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def make(**kwargs: Any) -> ServerThread:
        server = ServerThread(pki, **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


@pytest.fixture
def make_client(pki: MQTTTestPKI, server: ServerThread) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(client_id: str = "", version: int = 5, cert: str = "device", **kw: Any) -> Client:
        port = kw.pop("port", server.port)
        client = Client(port, pki.client(cert), client_id, version, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
