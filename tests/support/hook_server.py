"""A real HTTP server standing in for a pre-provisioning hook (AWS would call a Lambda).

``HookServer`` answers every POST according to ``mode``: ``allow`` (with ``overrides``),
``deny``, ``error`` (HTTP 500), ``garbage`` (not JSON) or ``hang`` (never answers until the
test ends). It records the JSON bodies it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HookServer:
    mode: str = "allow"
    overrides: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aenter__(self) -> HookServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode().split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length)
            self.received.append(json.loads(body))
            if self.mode == "hang":
                await self._release.wait()
                return
            status, answer = 200, b""
            if self.mode == "allow":
                answer = json.dumps(
                    {"allowProvisioning": True, "parameterOverrides": self.overrides}
                ).encode()
            elif self.mode == "deny":
                answer = json.dumps({"allowProvisioning": False}).encode()
            elif self.mode == "error":
                status, answer = 500, b'{"errorMessage": "boom"}'
            else:
                answer = b"<html>not json</html>"
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
