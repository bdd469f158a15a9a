"""The cluster's NATS reader fast path, without a network: every way the wire can be split."""

from __future__ import annotations

import asyncio
from typing import Any

from lantern.cluster.bus import _OrderedClient

WIRE = (
    b"MSG lantern.t.m.a 1 5\r\nhello\r\n"
    b"PING\r\n"
    b"MSG lantern.t.m.x 2 3\r\nabc\r\n"  # not a direct subscription
    b"MSG lantern.t.m.b 1 0\r\n\r\n"
    b"MSG lantern.t.m.r 1 _INBOX.q 2\r\nhi\r\n"  # with a reply subject
    b"+OK\r\n"
    b"MSG lantern.t.m.c 1 4\r\n\r\n\r\n\r\n"  # a payload that looks like line ends
    b"MSG lantern.t.m.d 1 3\r\nxyz\r\n"
)
EXPECTED: list[Any] = [
    ("direct", b"lantern.t.m.a", b"hello"),
    "PING",
    ("other", 2, b"abc"),
    ("direct", b"lantern.t.m.b", b""),
    ("direct", b"lantern.t.m.r", b"hi"),
    ("direct", b"lantern.t.m.c", b"\r\n\r\n"),
    ("direct", b"lantern.t.m.d", b"xyz"),
]


class Recording(_OrderedClient):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []
        self.direct[1] = lambda subject, data: self.events.append(("direct", subject, data))

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        if sid not in self.direct:
            self.events.append(("other", sid, data))
            return
        await super()._process_msg(sid, subject, reply, data, headers)

    async def _process_ping(self) -> None:
        self.events.append("PING")


def test_messages_arrive_once_in_wire_order_however_the_reads_split_them() -> None:
    async def feed(chunk: int) -> Recording:
        client = Recording()
        for i in range(0, len(WIRE), chunk):
            await client._ps.parse(WIRE[i : i + chunk])
        return client

    for chunk in range(1, len(WIRE) + 1):
        client = asyncio.run(feed(chunk))
        assert client.events == EXPECTED, f"reads of {chunk} bytes"
        assert not client._ps.buf
        assert client.stats["in_msgs"] == 5  # the direct ones (the other one is not ours)


def test_a_failing_handler_does_not_stop_the_messages_behind_it() -> None:
    async def run() -> list[bytes]:
        client = Recording()
        seen: list[bytes] = []

        def handler(subject: bytes, data: bytes) -> None:
            seen.append(data)
            if data == b"boom":
                raise RuntimeError("handler bug")

        client.direct[1] = handler
        await client._ps.parse(b"MSG s 1 4\r\nboom\r\nMSG s 1 2\r\nok\r\n")
        return seen

    assert asyncio.run(run()) == [b"boom", b"ok"]
