"""A local APNs: HTTP/2 over TLS (ALPN h2), checking what Apple checks.

It verifies the provider JWT (ES256 signature with the team's public key, ``kid``, ``iss``,
``iat`` age, and Apple's refresh-rate limit), the ``apns-topic`` and the ``/3/device/<hex>`` path,
answers scripted reasons per device token (410 ``Unregistered`` with a timestamp, 429, 5xx ...),
records each request, and counts TLS handshakes so tests can prove connection reuse.

Runs its own event loop in a thread (usable from sync and async tests and from a subprocess:
``python -m support.apns_standin``, used by the benchmark).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lantern.pki import CertificateAuthority

TOKEN_RE = re.compile(r"^/3/device/([0-9a-fA-F]+)$")


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding (optional in HPACK): hpack's pure-Python Huffman encoder
    would make this stand-in, which shares the CPUs with the relay in bench/push.py, costlier."""

    def encode(self, headers: object, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)  # type: ignore[arg-type]


@dataclass
class Reply:
    """A scripted answer: status, Apple ``reason``, optional 410 timestamp (ms), Retry-After.

    ``action`` scripts the connection instead: ``"goaway"`` sends GOAWAY (``reason`` in its JSON
    debug data, as Apple does; the stream is left unanswered) and closes the connection,
    ``"drop"`` closes the TCP connection without a word, ``"hang"`` never answers the stream,
    ``"freeze"`` stops reading and writing on the connection (a silently dead link).
    """

    status: int
    reason: str | None = None
    timestamp_ms: int | None = None
    retry_after: str | None = None
    action: str | None = None


@dataclass
class ReceivedPush:
    device_token: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class SigningKey:
    """A team's .p8 key as Apple hands it out, written to ``path``."""

    path: Path
    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey

    @classmethod
    def create(cls, directory: Path, key_id: str = "ABC123DEFG", team_id: str = "TEAM123456"):
        key = ec.generate_private_key(ec.SECP256R1())
        path = directory / f"AuthKey_{key_id}.p8"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cls(path, key_id, team_id, key.public_key())


@dataclass
class APNsStandIn:
    """Start with :meth:`start` (or as a context manager); ``host`` is ``127.0.0.1:<port>``."""

    tls_dir: Path
    key: SigningKey
    topic: str = "org.lantern.app"
    clock: Callable[[], float] = time.time
    record: bool = True
    enforce_refresh_limit: bool = True
    max_concurrent_streams: int = 1000
    handshakes: int = 0
    resets: int = 0  # RST_STREAM frames received from clients
    requests: list[ReceivedPush] = field(default_factory=list)
    script: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    tokens_seen: list[str] = field(default_factory=list)
    port: int = 0
    _verified: dict[str, float] = field(default_factory=dict)
    _last_new_token_at: float | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    def answer(self, device_token: str, *replies: Reply) -> None:
        """Queue replies for the next requests to ``device_token`` (then 200 again)."""
        with self._lock:
            self.script[device_token.lower()].extend(replies)

    def count_for(self, device_token: str) -> int:
        return sum(1 for r in self.requests if r.device_token == device_token.lower())

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> APNsStandIn:
        ca, _ = CertificateAuthority.load_or_create(self.tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(ca.server_cert_file), str(ca.server_key_file))
        context.set_alpn_protocols(["h2"])
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def serve() -> None:
                self._server = await asyncio.start_server(
                    self._connection, "127.0.0.1", self.port, ssl=context, backlog=1024
                )
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()
                async with self._server:
                    await self._server.serve_forever()

            try:
                loop.run_until_complete(serve())
            except asyncio.CancelledError:
                pass
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="apns-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("APNs stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            loop, server = self._loop, self._server

            def shutdown() -> None:
                server.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> APNsStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- protocol ------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The callback runs once the TLS handshake completed: one call = one handshake.
        with self._lock:
            self.handshakes += 1
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding="utf-8",
                # Inbound headers are validated (that is what Apple does); our own are fine.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
            },
        )
        conn.encoder = _PlainEncoder()
        conn.initiate_connection()
        conn.increment_flow_control_window(1 << 24)
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        answered = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        action = self._respond(conn, event.stream_id, headers, bytes(body))
                        answered += 1
                        if answered % 16 == 0:  # answer as streams finish, as a server would
                            writer.write(conn.data_to_send())
                        if action == "drop":
                            writer.transport.abort()
                            return
                        if action == "freeze":
                            await asyncio.Event().wait()  # until the stand-in stops
                        if action == "goaway":
                            writer.write(conn.data_to_send())
                            await writer.drain()
                            return
                    elif isinstance(event, h2.events.StreamReset):
                        streams.pop(event.stream_id, None)
                        with self._lock:
                            self.resets += 1
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        break
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _respond(
        self, conn: h2.connection.H2Connection, stream_id: int, headers: dict[str, str], body: bytes
    ) -> str | None:
        status, reason, extra = self._judge(headers, body)
        if extra.action == "goaway":
            conn.close_connection(
                additional_data=json.dumps({"reason": reason or "Shutdown"}).encode(),
                last_stream_id=max(0, stream_id - 2),
            )
            return "goaway"
        if extra.action is not None:
            return extra.action
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        out = [(":status", str(status)), ("apns-id", apns_id)]
        if status == 200:
            conn.send_headers(stream_id, out, end_stream=True)
            return None
        payload: dict[str, object] = {"reason": reason}
        if extra.timestamp_ms is not None:
            payload["timestamp"] = extra.timestamp_ms
        if extra.retry_after is not None:
            out.append(("retry-after", extra.retry_after))
        data = json.dumps(payload).encode()
        out += [("content-type", "application/json"), ("content-length", str(len(data)))]
        conn.send_headers(stream_id, out)
        conn.send_data(stream_id, data, end_stream=True)
        return None

    def _judge(self, headers: dict[str, str], body: bytes) -> tuple[int, str | None, Reply]:
        none = Reply(200)
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed", none
        match = TOKEN_RE.match(headers.get(":path", ""))
        if match is None:
            return 404, "BadPath", none
        device = match.group(1).lower()
        status, reason, extra = self._check_auth(headers)
        if status == 200:
            if (
                headers.get("apns-topic", "").split(".push-type")[0].removesuffix(".voip")
                != self.topic
            ):
                status, reason = 400, "BadTopic"
            elif not body:
                status, reason = 400, "PayloadEmpty"
            elif len(body) > 4096:
                status, reason = 413, "PayloadTooLarge"
            else:
                with self._lock:
                    queue = self.script.get(device)
                    scripted = queue.popleft() if queue else None
                if scripted is not None:
                    status, reason, extra = scripted.status, scripted.reason, scripted
        if self.record:
            with self._lock:
                self.requests.append(ReceivedPush(device, dict(headers), body, status))
        return status, reason, extra

    def _check_auth(self, headers: dict[str, str]) -> tuple[int, str | None, Reply]:
        none = Reply(200)
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return 403, "MissingProviderToken", none
        token = auth[len("bearer ") :]
        now = self.clock()
        with self._lock:
            issued = self._verified.get(token)
        if issued is None:
            try:
                header = jwt.get_unverified_header(token)
                claims = jwt.decode(
                    token,
                    self.key.public_key,
                    algorithms=["ES256"],
                    options={"verify_iat": False, "require": ["iss", "iat"]},
                )
            except jwt.PyJWTError:
                return 403, "InvalidProviderToken", none
            if header.get("kid") != self.key.key_id or claims.get("iss") != self.key.team_id:
                return 403, "InvalidProviderToken", none
            issued = float(claims["iat"])
            with self._lock:
                # Apple: a new token more often than every 20 minutes is refused.
                if (
                    self.enforce_refresh_limit
                    and self._last_new_token_at is not None
                    and issued - self._last_new_token_at < 1200
                ):
                    return 429, "TooManyProviderTokenUpdates", none
                self._last_new_token_at = issued
                self._verified[token] = issued
                self.tokens_seen.append(token)
        if now - issued > 3600:
            return 403, "ExpiredProviderToken", none
        return 200, None, none


def main() -> None:  # pragma: no cover - used by bench/push.py
    """``python -m support.apns_standin <dir> <port>``: serve until killed, no recording."""
    import sys

    directory = Path(sys.argv[1])
    key_id, team_id = sys.argv[3], sys.argv[4]
    public = serialization.load_pem_private_key(
        (directory / f"AuthKey_{key_id}.p8").read_bytes(), None
    ).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    standin = APNsStandIn(
        directory / "tls",
        SigningKey(directory / f"AuthKey_{key_id}.p8", key_id, team_id, public),
        record=False,
        enforce_refresh_limit=False,
        port=int(sys.argv[2]),
    )
    # The legacy relay signs a token per request; the real APNs would refuse that (429), the
    # benchmark measures the cost of doing it, so the refresh limit is off here. uvloop keeps
    # the stand-in's own CPU per request low (the benchmark reports it separately).
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    standin.start()
    print(f"ready {standin.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
