"""Fixtures: one temporary CA per session, an in-process MQTT server per test.

A module that sets ``CLUSTER_SCENARIOS = True`` runs each of its tests twice: on one server,
and on a two-node cluster (two servers routing over NATS, :mod:`support.cluster_threads`)
where ``make_client`` puts clients alternately on each node, so publishers and subscribers
(and the two connections of one client id) are on different nodes. Tests that read one
server's internals list themselves in ``ONE_NODE_ONLY``.
"""

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module
    if getattr(module, "CLUSTER_SCENARIOS", False) and "make_client" in metafunc.fixturenames:
        only_one = metafunc.function.__name__ in getattr(module, "ONE_NODE_ONLY", ())
        params = ["one-node"] if only_one else ["one-node", "two-nodes"]
        metafunc.parametrize("topology", params, indirect=True)


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "one-node"))


@pytest.fixture
def nodes(
    topology: str, make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> Iterator[list[ServerThread]]:
    if topology == "one-node":
        yield [make_server()]
        return
    from support.cluster_threads import ClusterThreads

    with ClusterThreads(pki, 2) as started:
        yield started


@pytest.fixture
def server(nodes: list[ServerThread]) -> ServerThread:
    return nodes[0]


@pytest.fixture
def make_client(pki: MQTTTestPKI, nodes: list[ServerThread]) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(client_id: str = "", version: int = 5, cert: str = "device", **kw: Any) -> Client:
        # Alternate nodes on a cluster: the next client is on the other node.
        port = kw.pop("port", nodes[len(clients) % len(nodes)].port)
        client = Client(port, pki.client(cert), client_id, version, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
