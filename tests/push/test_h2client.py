"""The APNs HTTP/2 client against the stand-in: GOAWAY, lost connections, timeouts, stream
limits, connect failures and ALPN, each seen both from the client and through the dispatcher."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import DEVICE, FakeClock, apns_settings, make_dispatcher
from lantern.pki import CertificateAuthority
from lantern.push.keys import ApiKey
from lantern.push.providers.apns import MAX_CONNECTIONS, APNsProvider
from lantern.push.providers.base import PreparedMessage, TemporaryFailure
from lantern.push.providers.h2client import H2Client, H2Error
from lantern.push.providers.http import ssl_context
from lantern.store import Database
from support.apns_standin import APNsStandIn, Reply, SigningKey
from support.net import free_port

KEY = ApiKey("key_test", "Org", "external", None)
OTHER = "b2" * 32
PAYLOAD = {"aps": {"alert": "x"}}


@pytest.fixture
async def provider(apns_standin: APNsStandIn) -> AsyncIterator[APNsProvider]:
    provider = APNsProvider(apns_settings(apns_standin), timeout=2.0)
    yield provider
    await provider.close()


async def test_goaway_fails_in_flight_streams_as_retryable_and_the_retry_reconnects(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock, provider: APNsProvider
) -> None:
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock)
    try:
        warm = await dispatcher.dispatch(KEY, f"apns:{OTHER}", PAYLOAD)
        assert warm.status == "delivered"
        apns_standin.answer(DEVICE, Reply(0, "Shutdown", action="goaway"))
        outcomes = await asyncio.gather(
            dispatcher.dispatch(KEY, f"apns:{DEVICE}", PAYLOAD),
            *(
                dispatcher.dispatch(KEY, f"apns:{OTHER}", {"aps": {"alert": str(i)}})
                for i in range(20)
            ),
        )
    finally:
        await dispatcher.close()
    assert {o.status for o in outcomes} == {"delivered"}
    assert outcomes[0].attempts == 2  # failed as retryable on the GOAWAY, then delivered
    assert apns_standin.handshakes == 2  # exactly one reconnect
    assert provider.client.open_connections == 0  # closed with the dispatcher


async def test_goaway_reason_is_reported_when_the_budget_allows_no_retry(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock, provider: APNsProvider
) -> None:
    apns_standin.answer(DEVICE, *[Reply(0, "Shutdown", action="goaway")] * 50)
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock, budget=0.01)
    try:
        outcome = await dispatcher.dispatch(KEY, f"apns:{DEVICE}", PAYLOAD)
    finally:
        await dispatcher.close()
    assert (outcome.status, outcome.http_status, outcome.reason) == ("failed", 502, "Shutdown")


async def test_a_connection_lost_mid_stream_is_retryable_and_the_retry_reconnects(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock, provider: APNsProvider
) -> None:
    apns_standin.answer(DEVICE, Reply(0, action="drop"))
    with pytest.raises(TemporaryFailure) as info:
        await provider.send(provider.prepare(DEVICE, PAYLOAD))
    assert info.value.reason == "ConnectionLost"
    assert provider.client.open_connections == 0

    apns_standin.answer(DEVICE, Reply(0, action="drop"))
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock)
    try:
        outcome = await dispatcher.dispatch(KEY, f"apns:{DEVICE}", PAYLOAD)
    finally:
        await dispatcher.close()
    assert (outcome.status, outcome.attempts) == ("delivered", 2)
    assert apns_standin.handshakes == 3


async def test_a_stream_without_answer_times_out_is_reset_and_the_connection_stays(
    apns_standin: APNsStandIn,
) -> None:
    provider = APNsProvider(apns_settings(apns_standin), timeout=0.3)
    try:
        apns_standin.answer(DEVICE, Reply(0, action="hang"))
        with pytest.raises(TemporaryFailure) as info:
            await provider.send(provider.prepare(DEVICE, PAYLOAD))
        assert info.value.reason == "Timeout"
        await provider.send(provider.prepare(DEVICE, PAYLOAD))  # same connection still works
    finally:
        await provider.close()
    assert apns_standin.handshakes == 1
    assert apns_standin.resets == 1  # the client cancelled the stream it gave up on


async def test_a_silently_dead_connection_is_retired_after_an_unanswered_ping(
    apns_standin: APNsStandIn,
) -> None:
    provider = APNsProvider(apns_settings(apns_standin), timeout=0.3)
    try:
        await provider.send(provider.prepare(OTHER, PAYLOAD))
        apns_standin.answer(DEVICE, Reply(0, action="freeze"))
        with pytest.raises(TemporaryFailure) as info:
            await provider.send(provider.prepare(DEVICE, PAYLOAD))
        assert info.value.reason == "Timeout"
        # The PING goes unanswered: the connection is retired, the retry opens a fresh one.
        retired = asyncio.get_running_loop().create_future()
        client = provider.client
        forget = client._forget

        def forgotten(connection: object) -> None:
            forget(connection)  # type: ignore[arg-type]
            if not retired.done():
                retired.set_result(None)

        client._forget = forgotten  # type: ignore[method-assign]
        await asyncio.wait_for(retired, 5)
        assert client.open_connections == 0
        await provider.send(provider.prepare(DEVICE, PAYLOAD))
    finally:
        await provider.close()
    assert apns_standin.handshakes == 2


async def test_streams_beyond_the_servers_limit_use_a_small_pool_then_wait(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    with APNsStandIn(tmp_path / "tls", signing_key, max_concurrent_streams=2) as standin:
        provider = APNsProvider(apns_settings(standin))
        try:
            message = provider.prepare(DEVICE, PAYLOAD)
            await asyncio.gather(*(provider.send(message) for _ in range(40)))
            assert provider.client.open_connections == MAX_CONNECTIONS
        finally:
            await provider.close()
        # A stream over the server's limit would have been refused and retried elsewhere.
        assert standin.handshakes == MAX_CONNECTIONS
        assert len(standin.requests) == 40 and {r.status for r in standin.requests} == {200}


def _one_connection_client(
    standin: APNsStandIn,
) -> tuple[H2Client, APNsProvider, PreparedMessage, list[tuple[bytes, bytes]]]:
    """A bare one-connection client to ``standin`` and an APNs request's message and headers."""
    settings = apns_settings(standin)
    assert settings.ca_file is not None
    client = H2Client("127.0.0.1", standin.port, ssl_context(settings.ca_file), max_connections=1)
    provider = APNsProvider(settings)
    message = provider.prepare(DEVICE, PAYLOAD)
    headers = [
        (b"authorization", f"bearer {provider.provider_token.get()}".encode()),
        *((k.encode(), v.encode()) for k, v in message.headers.items()),
    ]
    return client, provider, message, headers


async def test_one_connection_at_its_stream_limit_queues_requests(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    with APNsStandIn(tmp_path / "tls", signing_key, max_concurrent_streams=1) as standin:
        client, provider, message, headers = _one_connection_client(standin)
        try:
            responses = await asyncio.gather(
                *(
                    client.request(f"/3/device/{DEVICE}", headers, message.body["_raw"])
                    for _ in range(10)
                )
            )
        finally:
            await client.aclose()
            await provider.close()
    assert [r.status for r in responses] == [200] * 10
    assert client.connections_opened == 1 and standin.handshakes == 1


class _CountingTransport:
    """Delegates to the real transport, counting writes."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_burst_of_streams_is_written_in_slices_so_the_server_starts_early(
    apns_standin: APNsStandIn,
) -> None:
    """40 streams started in one loop turn leave in 3 writes (16 + 16 + 8), not 1 at the end of
    the turn: a whole burst in one write leaves the server idle while the relay prepares it."""
    client, provider, message, headers = _one_connection_client(apns_standin)
    path = f"/3/device/{DEVICE}"
    try:
        assert (await client.request(path, headers, message.body["_raw"])).status == 200
        connection = client._connections[0]
        assert connection.transport is not None
        counting = _CountingTransport(connection.transport)
        connection.transport = counting  # type: ignore[assignment]
        responses = await asyncio.gather(
            *(client.request(path, headers, message.body["_raw"]) for _ in range(40))
        )
        burst_writes = counting.writes  # (closing adds a GOAWAY write)
    finally:
        await client.aclose()
        await provider.close()
    assert [r.status for r in responses] == [200] * 40
    assert burst_writes == 3
    assert client.connections_opened == 1


async def test_concurrent_requests_share_one_failed_connect(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "tls")
    client = H2Client("127.0.0.1", free_port(), ssl_context(ca.ca_file), connect_timeout=2.0)
    try:
        results = await asyncio.gather(
            *(client.request("/3/device/x", [], b"{}") for _ in range(5)), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(r, H2Error) and r.reason == "ConnectError" for r in results)
    assert client.connections_opened == 0


async def test_a_server_that_does_not_speak_http2_is_refused(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(ca.server_cert_file), str(ca.server_key_file))
    context.set_alpn_protocols(["http/1.1"])

    async def http11(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(http11, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client = H2Client("127.0.0.1", port, ssl_context(ca.ca_file))
    try:
        with pytest.raises(H2Error) as info:
            await client.request("/3/device/x", [], b"{}")
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert info.value.reason == "NoHTTP2"


async def test_a_closed_client_refuses_new_requests(
    apns_standin: APNsStandIn, provider: APNsProvider
) -> None:
    await provider.send(provider.prepare(DEVICE, PAYLOAD))
    await provider.close()
    client = provider.client  # a new, unused client after close
    await client.aclose()
    with pytest.raises(H2Error) as info:
        await client.request(f"/3/device/{DEVICE}", [], b"{}")
    assert info.value.reason == "Closed"
