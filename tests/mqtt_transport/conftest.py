"""Fixtures of the transport tests; every async test runs on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import uvloop

from lantern.mqtt.transport import (
    Listener,
    make_server_ssl_context,
    start_tcp_listener,
    start_tls_listener,
    start_ws_listener,
)
from support.mqtt_transport import Factory, Pki, Serve, make_pki


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server_ctx(pki: Pki) -> ssl.SSLContext:
    return make_server_ssl_context(pki.ca.server_cert_file, pki.ca.server_key_file, pki.ca.ca_file)


@pytest.fixture
async def serve(server_ctx: ssl.SSLContext) -> AsyncIterator[Serve]:
    """Start a listener of a kind ("tcp", "tls", "ws", "wss") on a free port; everything it
    opened is closed at teardown (uvloop hangs at loop close if a server is left open)."""
    opened: list[tuple[Listener, Factory]] = []

    async def start(kind: str, factory: Factory, **kwargs: Any) -> Listener:
        kwargs.setdefault("max_connections", 100)
        if kind == "tcp":
            listener = await start_tcp_listener(kind, "127.0.0.1", 0, factory, **kwargs)
        elif kind == "tls":
            kwargs.setdefault("ssl_context", server_ctx)
            listener = await start_tls_listener(kind, "127.0.0.1", 0, factory, **kwargs)
        else:
            if kind == "wss":
                kwargs.setdefault("ssl_context", server_ctx)
            listener = await start_ws_listener(kind, "127.0.0.1", 0, factory, **kwargs)
        opened.append((listener, factory))
        return listener

    yield start
    for listener, factory in opened:
        await listener.close()
        for rec in factory.made:
            if rec.stream is not None:
                rec.stream.abort()
    await asyncio.sleep(0)
