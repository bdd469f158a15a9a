"""Fixtures: one temporary CA per session; a fresh in-process MQTTServer per test (plain TCP on
port 0, allow-all hooks except the paho suite's refused topic) and client factories that clean up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mqtt_interop.harness import (
    ClientFiles,
    InteropPKI,
    NoSubscribeAuthorizer,
    PahoClient,
    ServerThread,
)
from mqtt_interop.raw import RawClient


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> InteropPKI:
    return InteropPKI.create(tmp_path_factory.mktemp("interop-pki"))


@pytest.fixture
def make_server(pki: InteropPKI) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def make(**config: Any) -> ServerThread:
        config.setdefault("authorizer", NoSubscribeAuthorizer())
        server = ServerThread(pki, **config)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    """The default server: plain TCP only, default limits."""
    return make_server()


@pytest.fixture
def paho_client(server: ServerThread) -> Iterator[Callable[..., PahoClient]]:
    """``paho_client(client_id, version=5|4, **kw)`` on the default server's TCP port."""
    clients: list[PahoClient] = []

    def make(client_id: str = "", version: int = 5, **kw: Any) -> PahoClient:
        kw.setdefault("port", server.tcp_port)
        client = PahoClient(client_id=client_id, version=version, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


@pytest.fixture
def raw_client(server: ServerThread) -> Iterator[Callable[..., RawClient]]:
    """``raw_client(level=5|4, port=..., files=...)``: a codec-level socket client."""
    clients: list[RawClient] = []

    def make(
        level: int = 5, port: int | None = None, files: ClientFiles | None = None
    ) -> RawClient:
        client = RawClient.open(server.tcp_port if port is None else port, level, files)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
