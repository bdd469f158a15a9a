"""Benchmark (not a test): client-side CPU of HTTP/2 per APNs request+response, h2 vs h2wire.

Both clients send N requests of the relay's shape (POST /3/device/<64 hex>, a ~200-character
provider JWT, apns-push-type, apns-topic, a ~150-byte JSON body) in bursts of 16, each burst
then taken as one write, and parse the matching responses (``:status 200``, ``apns-id``,
END_STREAM) written by an ``h2`` server connection in memory, also one read per burst. The server's
answers are recorded once and replayed: only the clients' CPU is measured. The h2 client is
configured as ``h2client._Connection`` was before h2wire (validation and normalisation off,
HPACK without Huffman, an O(1) count of open streams).

    .venv/bin/python bench/h2wire.py [N]
"""

from __future__ import annotations

import gc
import secrets
import sys
import time
import uuid
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack

from lantern.push.providers import h2wire

BURST = 16
WINDOW = 1 << 20
JWT = b"bearer " + secrets.token_urlsafe(150).encode()[:200]
BODY = b'{"aps":{"alert":{"title":"Medication","body":"Time for your evening dose of 5 mg."},' + (
    b'"sound":"default","badge":1},"reminder_id":"r_8c1f0e2a"}'
)


def request_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"api.push.apple.com"),
        (b":path", b"/3/device/" + secrets.token_hex(32).encode()),
        (b"authorization", JWT),
        (b"apns-push-type", b"alert"),
        (b"apns-topic", b"org.lantern.app"),
    ]


class PlainEncoder(hpack.Encoder):
    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


class CountingH2(h2.connection.H2Connection):
    known_open = 0

    @property
    def open_outbound_streams(self) -> int:
        if len(self.streams) > 2 * self.known_open + 32:
            return super().open_outbound_streams
        return self.known_open


class Server:
    """An h2 server connection answering every request with 200 + apns-id (not timed)."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            },
        )
        self.conn.encoder = PlainEncoder()
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)

    def answer(self, data: bytes) -> bytes:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers = [(b":status", b"200"), (b"apns-id", str(uuid.uuid4()).encode())]
                self.conn.send_headers(event.stream_id, headers, end_stream=True)
        return self.conn.data_to_send()


def record(requests: list[list[tuple[bytes, bytes]]]) -> tuple[bytes, list[bytes]]:
    """The server's bytes: its answer to the preface, then its answer to each burst. They are
    the same whichever client asks (same stream ids, bodies and window updates), so the timed
    runs replay them and the server's CPU is not spent again."""
    client, server = h2wire.H2Wire(WINDOW), Server()
    client.initiate()
    hello = server.answer(client.data_to_send())
    client.receive(hello)
    answers = []
    for start in range(0, len(requests), BURST):
        for headers in requests[start : start + BURST]:
            client.send_request(headers, BODY)
        answers.append(server.answer(client.data_to_send()))
        client.receive(answers[-1])
    assert not server.answer(client.data_to_send()) and not client.streams
    return hello, answers


Run = tuple[list[list[tuple[bytes, bytes]]], bytes, list[bytes]]


def run_h2(requests: list[list[tuple[bytes, bytes]]], hello: bytes, answers: list[bytes]) -> float:
    """Seconds of client CPU for the requests and their responses."""
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    client = CountingH2(config=config)
    client.encoder = PlainEncoder()
    client.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
        },
    )
    client.initiate_connection()
    client.increment_flow_control_window(WINDOW)
    client.data_to_send()
    client.receive_data(hello)
    client.data_to_send()
    open_streams: set[int] = set()
    clock = time.process_time
    t0 = clock()
    for burst, answer in zip(range(0, len(requests), BURST), answers, strict=False):
        for headers in requests[burst : burst + BURST]:
            sid = client.get_next_available_stream_id()
            client.known_open = len(open_streams)
            client.send_headers(sid, headers)
            size = min(client.local_flow_control_window(sid), client.max_outbound_frame_size)
            assert size >= len(BODY)
            client.send_data(sid, BODY, end_stream=True)
            open_streams.add(sid)
        client.data_to_send()
        for event in client.receive_data(answer):
            kind = type(event)
            if kind is h2.events.ResponseReceived:
                assert event.headers[0] == (b":status", b"200")  # type: ignore[attr-defined]
            elif kind is h2.events.StreamEnded:
                open_streams.remove(event.stream_id)  # type: ignore[attr-defined]
        client.data_to_send()
    elapsed = clock() - t0
    assert not open_streams
    return elapsed


def run_h2wire(
    requests: list[list[tuple[bytes, bytes]]], hello: bytes, answers: list[bytes]
) -> float:
    """Seconds of client CPU for the requests and their responses."""
    client = h2wire.H2Wire(WINDOW)
    client.initiate()
    client.data_to_send()
    client.receive(hello)
    client.data_to_send()
    open_streams: set[int] = set()
    response, ended = h2wire.RESPONSE, h2wire.ENDED
    clock = time.process_time
    t0 = clock()
    for burst, answer in zip(range(0, len(requests), BURST), answers, strict=False):
        for headers in requests[burst : burst + BURST]:
            open_streams.add(client.send_request(headers, BODY))
        client.data_to_send()
        for event in client.receive(answer):
            kind = event[0]
            if kind == response:
                assert event[2] == 200
            elif kind == ended:
                open_streams.remove(event[1])
        client.data_to_send()
    elapsed = clock() - t0
    assert not open_streams
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    indexed = [request_headers() for _ in range(n)]
    # As H2Client sends them: the per-device :path kept out of the HPACK table.
    unindexed = [[*h[:3], hpack.NeverIndexedHeaderTuple(*h[3]), *h[4:]] for h in indexed]
    hello, answers = record(indexed)
    print(f"µs of client CPU per request+response ({n}, bursts of {BURST}):")
    totals: dict[str, float] = {}
    for label, run, requests in (
        ("h2", run_h2, indexed),
        ("h2wire", run_h2wire, indexed),
        ("h2, :path not indexed", run_h2, unindexed),
        ("h2wire, :path not indexed", run_h2wire, unindexed),
    ):
        run(requests[: n // 10], hello, answers)  # warm up
        gc.collect()
        totals[label] = run(requests, hello, answers) / n * 1e6
        ratio = totals[label] / totals[label.replace("h2wire", "h2")]
        print(f"  {label:26} {totals[label]:5.1f}  ({ratio:.2f} of h2)")
    old, new = totals["h2"], totals["h2wire, :path not indexed"]
    print(
        f"before (h2) -> now (h2wire, :path not indexed): {old:.1f} -> {new:.1f} ({new / old:.2f})"
    )


if __name__ == "__main__":
    main()
