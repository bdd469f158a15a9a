"""h2wire, the hand-written client HTTP/2 framing, checked against an independent implementation:
the ``h2`` library as the server, in memory. Malformed input is built by hand."""

from __future__ import annotations

import struct
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from lantern.push.providers import h2wire
from lantern.push.providers.h2wire import (
    COMPRESSION_ERROR,
    DATA,
    ENDED,
    ERROR,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    PING_ACK,
    PROTOCOL_ERROR,
    RESET,
    RESPONSE,
    SETTINGS,
    Event,
    H2Wire,
)

Codes = h2.settings.SettingCodes
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":authority", b"api.push.apple.com"),
    (b":path", b"/3/device/" + b"ab" * 32),
    (b"apns-topic", b"org.lantern.app"),
]
OK = [(b":status", b"200"), (b"apns-id", b"6f5e3b0c-64a1-4b52-9b0a-2f1c9d6e4a10")]
WINDOW = 1 << 20


def new_server(**settings: int) -> h2.connection.H2Connection:
    server = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    if settings:
        server.local_settings = h2.settings.Settings(
            client=False, initial_values={Codes[name]: value for name, value in settings.items()}
        )
    return server


class Pair:
    """Our client and an h2 server, connected in memory; the server acknowledges all data."""

    def __init__(self, **server_settings: int) -> None:
        self.client = H2Wire(WINDOW)
        self.server = new_server(**server_settings)
        self.server.initiate_connection()
        self.client.initiate()
        self.server_events: list[h2.events.Event] = []
        self.bodies: dict[int, bytes] = {}  # request bodies as the server received them
        self.ended: list[int] = []  # requests the server saw end
        self.handshake = self.pump()

    def to_server(self) -> bool:
        data = self.client.data_to_send()
        for event in self.server.receive_data(data):
            self.server_events.append(event)
            if isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None and event.data is not None
                self.bodies[event.stream_id] = self.bodies.get(event.stream_id, b"") + event.data
                assert event.flow_controlled_length is not None
                self.server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                assert event.stream_id is not None
                self.ended.append(event.stream_id)
        return bool(data)

    def pump(self) -> list[Event]:
        """Exchange bytes until both sides are quiet; the client's events."""
        events: list[Event] = []
        while True:
            sent = self.to_server()
            data = self.server.data_to_send()
            if data:
                events += self.client.receive(data)
            elif not sent:
                return events

    def respond(self, sid: int, body: bytes = b"", **data_options: int) -> None:
        self.server.send_headers(sid, OK, end_stream=not body)
        if body:
            self.server.send_data(sid, body, end_stream=True, **data_options)


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IBI", len(payload) << 8 | kind, flags, sid) + payload


def responses(events: list[Event]) -> dict[int, tuple[int, bytes, bool]]:
    """Per stream: status, body, ended."""
    seen: dict[int, tuple[int, bytes, bool]] = {}
    for event in events:
        if event[0] == RESPONSE:
            assert event[1] not in seen
            seen[event[1]] = (event[2], b"", False)
        elif event[0] == DATA:
            status, body, ended = seen[event[1]]
            assert not ended
            seen[event[1]] = (status, body + event[2], ended)
        elif event[0] == ENDED:
            status, body, _ = seen[event[1]]
            seen[event[1]] = (status, body, True)
    return seen


def test_the_handshake_announces_our_settings_and_window() -> None:
    pair = Pair(MAX_CONCURRENT_STREAMS=50)
    changed = [e for e in pair.server_events if isinstance(e, h2.events.RemoteSettingsChanged)]
    assert changed[0].changed_settings[Codes.ENABLE_PUSH].new_value == 0
    assert changed[0].changed_settings[Codes.INITIAL_WINDOW_SIZE].new_value == WINDOW
    assert pair.server.outbound_flow_control_window == WINDOW  # raised from 65535
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in pair.server_events)
    assert pair.handshake == [(SETTINGS,)]
    assert pair.client.max_concurrent_streams == 50


def test_many_concurrent_streams_answered_out_of_order() -> None:
    pair = Pair()
    sids = [pair.client.send_request(REQUEST, b'{"n":%d}' % i) for i in range(100)]
    assert sids == list(range(1, 201, 2))
    pair.pump()
    assert sorted(pair.ended) == sids
    assert pair.bodies == {sid: b'{"n":%d}' % i for i, sid in enumerate(sids)}
    for i, sid in enumerate(reversed(sids)):
        pair.respond(sid, b"x" * i)
    got = responses(pair.pump())
    assert got == {sid: (200, b"x" * (99 - i), True) for i, sid in enumerate(sids)}
    assert pair.client.streams == {}


def test_a_request_without_body_ends_with_its_headers() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"")
    pair.pump()
    received = [e for e in pair.server_events if isinstance(e, h2.events.RequestReceived)]
    assert received[0].stream_ended is not None and pair.ended == [sid]
    assert list(received[0].headers or []) == REQUEST


def test_a_body_beyond_the_servers_window_and_frame_size_waits_for_window_updates() -> None:
    pair = Pair()  # the server's windows: 65535 (connection and stream), frames of 16384
    body = bytes(range(256)) * 1000
    sid = pair.client.send_request(REQUEST, body)
    pair.to_server()
    assert len(pair.bodies[sid]) == 65535  # what the windows allowed, then WINDOW_UPDATEs
    pair.pump()
    assert pair.bodies[sid] == body and pair.ended == [sid]


def test_a_server_lowering_its_initial_window_mid_flight() -> None:
    pair = Pair()
    body = b"b" * 150_000
    first = pair.client.send_request(REQUEST, body)
    pair.server.receive_data(pair.client.data_to_send())  # 65535 bytes, not acknowledged yet
    pair.server.update_settings({Codes.INITIAL_WINDOW_SIZE: 1000})
    pair.client.receive(pair.server.data_to_send())  # the stream's window is now negative
    assert pair.client.streams[first].send_window == 1000 - 65535
    pair.to_server()  # our SETTINGS ACK: the server's side of the new window takes effect
    second = pair.client.send_request(REQUEST, b"s" * 5000)
    pair.server.acknowledge_received_data(65535, first)
    pair.pump()  # the h2 server raises FlowControlError if we overran a window
    assert pair.bodies[second] == b"s" * 5000
    assert len(pair.bodies[first]) == len(body) - 65535 and set(pair.ended) == {first, second}


def test_a_server_raising_its_windows_and_frame_size_unblocks_a_body() -> None:
    pair = Pair()
    pair.server.update_settings({Codes.MAX_FRAME_SIZE: 1 << 20})
    pair.pump()
    sid = pair.client.send_request(REQUEST, b"z" * 100_000)
    events = pair.server.receive_data(pair.client.data_to_send())  # not acknowledged
    sizes = [e.flow_controlled_length for e in events if isinstance(e, h2.events.DataReceived)]
    assert sizes == [65535]  # one frame: as much as the windows allow
    pair.server.update_settings({Codes.INITIAL_WINDOW_SIZE: 1 << 20})
    pair.server.increment_flow_control_window(1 << 20)
    assert pair.client.receive(pair.server.data_to_send()) == [(SETTINGS,)]
    events = pair.server.receive_data(pair.client.data_to_send())
    sizes = [e.flow_controlled_length for e in events if isinstance(e, h2.events.DataReceived)]
    assert sizes == [100_000 - 65535]
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in events)


def test_a_response_before_the_whole_body_was_sent_stops_the_upload() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"b" * 100_000)
    pair.server.receive_data(pair.client.data_to_send())
    pair.respond(sid)
    events = pair.client.receive(pair.server.data_to_send())
    assert events == [(RESPONSE, sid, 200, OK[1:]), (ENDED, sid)]
    pair.to_server()
    reset = [e for e in pair.server_events if isinstance(e, h2.events.StreamReset)]
    assert reset[0].error_code == h2.errors.ErrorCodes.CANCEL


def test_padded_response_data_is_stripped_and_counted_against_the_windows() -> None:
    pair = Pair()
    sids = [pair.client.send_request(REQUEST, b"{}") for _ in range(3)]
    pair.pump()
    # 3 streams x 1.5 MiB of padded DATA: beyond the 1 MiB windows, so only our WINDOW_UPDATEs
    # (which count the padding) let it through.
    chunk = b"d" * 16000
    for sid in sids:
        pair.server.send_headers(sid, OK)
    received: dict[int, int] = dict.fromkeys(sids, 0)
    for _ in range(100):
        for sid in sids:
            pair.server.send_data(sid, chunk, pad_length=255)
            assert pair.server.local_flow_control_window(sid) > 0  # the server never waits
        for event in pair.pump():
            if event[0] == DATA:
                received[event[1]] += len(event[2])
        # What the server may still send is what we think we granted: padding counted.
        assert pair.server.outbound_flow_control_window == pair.client._connection_receive
    assert received == dict.fromkeys(sids, 100 * len(chunk))
    assert pair.server.outbound_flow_control_window > WINDOW // 2


def test_a_large_response_keeps_the_servers_windows_open() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.server.send_headers(sid, OK)
    body = bytes(range(256)) * 16 * 1024  # 4 MiB: four times our windows
    got = b""
    for start in range(0, len(body), 65536):
        for part in range(start, start + 65536, 16384):
            pair.server.send_data(
                sid, body[part : part + 16384], end_stream=part + 16384 == len(body)
            )
        got += b"".join(e[2] for e in pair.pump() if e[0] == DATA)
        if start + 65536 < len(body):
            assert pair.server.local_flow_control_window(sid) >= WINDOW // 2
            assert pair.server.outbound_flow_control_window >= WINDOW // 2
    assert got == body and pair.client.streams == {}


def test_header_blocks_split_into_continuation_both_ways() -> None:
    pair = Pair()
    big = b"v" * 40_000
    sid = pair.client.send_request([*REQUEST, (b"x-big", big)], b"")  # 3 frames of 16384
    pair.pump()
    received = [e for e in pair.server_events if isinstance(e, h2.events.RequestReceived)]
    assert dict(received[0].headers or [])[b"x-big"] == big
    pair.server.send_headers(sid, [*OK, (b"x-big", big)], end_stream=True)
    data = pair.server.data_to_send()
    assert data[3] == 1 and data[9 + 16384 + 3] == 9  # HEADERS then CONTINUATION
    assert pair.client.receive(data) == [
        (RESPONSE, sid, 200, [OK[1], (b"x-big", big)]),
        (ENDED, sid),
    ]


def test_informational_responses_are_skipped() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.server.send_headers(sid, [(b":status", b"100")])
    pair.server.send_headers(sid, [(b":status", b"103"), (b"link", b"</a>; rel=preload")])
    pair.respond(sid, b"done")
    assert pair.pump() == [(RESPONSE, sid, 200, OK[1:]), (DATA, sid, b"done"), (ENDED, sid)]


def test_trailers_end_the_stream_without_another_response() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.server.send_headers(sid, OK)
    pair.server.send_data(sid, b"body")
    pair.server.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    assert pair.pump() == [(RESPONSE, sid, 200, OK[1:]), (DATA, sid, b"body"), (ENDED, sid)]


def test_a_reset_from_the_server() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"b" * 100_000)  # partly blocked
    pair.pump()
    pair.server.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
    assert pair.pump() == [(RESET, sid, 7)]
    assert h2wire.error_name(7) == "REFUSED_STREAM" and h2wire.error_name(0x42) == "0x42"
    assert pair.client.streams == {}


def test_frames_for_a_stream_we_reset_are_ignored_but_keep_hpack_and_windows_in_step() -> None:
    pair = Pair()
    first = pair.client.send_request(REQUEST, b"{}")
    second = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.server.send_headers(first, OK)  # indexes apns-id in the server's HPACK table
    for _ in range(40):
        pair.server.send_data(first, b"x" * 16384)
    late = pair.server.data_to_send()
    pair.client.reset_stream(first)
    assert pair.client.receive(late) == []  # nothing for the reset stream ...
    pair.to_server()  # ... but connection WINDOW_UPDATEs for its data, and the RST_STREAM
    assert pair.server.outbound_flow_control_window == pair.client._connection_receive
    pair.respond(second)  # apns-id from the dynamic table: decodes only if we decoded it too
    assert pair.pump() == [(RESPONSE, second, 200, OK[1:]), (ENDED, second)]
    reset = [e for e in pair.server_events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in reset] == [(first, h2.errors.ErrorCodes.CANCEL)]


def test_goaway_with_debug_data() -> None:
    pair = Pair()
    for _ in range(3):
        pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.server.close_connection(
        error_code=h2.errors.ErrorCodes.NO_ERROR,
        additional_data=b'{"reason":"Shutdown"}',
        last_stream_id=3,
    )
    assert pair.pump() == [(GOAWAY, 0, 3, b'{"reason":"Shutdown"}')]


def test_ping_both_ways() -> None:
    pair = Pair()
    pair.client.ping(b"lantern?")
    assert pair.pump() == [(PING_ACK, b"lantern?")]
    pair.server.ping(b"12345678")
    pair.pump()
    acks = [e for e in pair.server_events if isinstance(e, h2.events.PingAckReceived)]
    assert [e.ping_data for e in acks] == [b"12345678"]
    with pytest.raises(ValueError):
        pair.client.ping(b"short")


def test_the_servers_stream_limit_may_change_at_any_time() -> None:
    pair = Pair(MAX_CONCURRENT_STREAMS=1)
    assert pair.client.max_concurrent_streams == 1
    first = pair.client.send_request(REQUEST, b"{}")
    with pytest.raises(h2wire.TooManyStreamsError):
        pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.server.update_settings({Codes.MAX_CONCURRENT_STREAMS: 3})
    assert pair.pump() == [(SETTINGS,)] and pair.client.max_concurrent_streams == 3
    for _ in range(2):
        pair.client.send_request(REQUEST, b"{}")
    with pytest.raises(h2wire.TooManyStreamsError):
        pair.client.send_request(REQUEST, b"{}")
    pair.respond(first)
    pair.pump()
    pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    assert len(pair.ended) == 4


def test_a_smaller_hpack_table_from_the_server_is_applied_to_our_encoder() -> None:
    pair = Pair()
    pair.client.send_request(REQUEST, b"")
    pair.pump()
    pair.server.update_settings({Codes.HEADER_TABLE_SIZE: 0})
    pair.pump()
    sid = pair.client.send_request([*REQUEST, (b"x-new", b"1")], b"")
    pair.pump()  # the h2 server fails to decode if our encoder still indexes
    received = [e for e in pair.server_events if isinstance(e, h2.events.RequestReceived)]
    assert received[-1].stream_id == sid and dict(received[-1].headers or [])[b"x-new"] == b"1"


def test_stream_ids_run_out() -> None:
    wire = H2Wire()
    wire._next_id = (1 << 31) - 1
    assert wire.send_request(REQUEST, b"") == (1 << 31) - 1
    with pytest.raises(h2wire.NoStreamIdsError):
        wire.send_request(REQUEST, b"")


def test_byte_at_a_time_gives_the_same_events_as_one_piece() -> None:
    whole, split = H2Wire(), H2Wire()
    server = new_server(MAX_CONCURRENT_STREAMS=10)
    server.initiate_connection()
    for wire in (whole, split):
        wire.initiate()
        for _ in range(3):
            wire.send_request(REQUEST, b"{}")
    script: list[Callable[[], object]] = [
        lambda: None,  # the server's SETTINGS
        lambda: server.send_headers(1, [(b":status", b"103")]),
        lambda: server.send_headers(1, [*OK, (b"x-big", b"v" * 20_000)]),  # + CONTINUATION
        lambda: server.send_data(1, b"padded", end_stream=True, pad_length=10),
        lambda: server.reset_stream(3, h2.errors.ErrorCodes.INTERNAL_ERROR),
        lambda: server.ping(b"abcdefgh"),
        lambda: server.update_settings({Codes.MAX_CONCURRENT_STREAMS: 5}),
        lambda: server.send_headers(5, OK, end_stream=True),
        lambda: server.close_connection(additional_data=b'{"reason":"Idle"}'),
    ]
    in_one: list[Event] = []
    in_bytes: list[Event] = []
    for step in script:
        out = whole.data_to_send()
        assert split.data_to_send() == out  # same state, same answers (acks, window updates)
        server.receive_data(out)
        step()
        data = server.data_to_send()
        in_one += whole.receive(data)
        for i in range(len(data)):
            in_bytes += split.receive(data[i : i + 1])
        assert in_bytes == in_one
    assert [e[0] for e in in_one] == [
        *(SETTINGS, RESPONSE, DATA, ENDED, RESET, SETTINGS, RESPONSE, ENDED, GOAWAY)
    ]


def setting(code: int, value: int) -> bytes:
    return frame(4, 0, 0, struct.pack(">HI", code, value))


MALFORMED = {
    "a frame beyond our frame size": (frame(0, 0, 1, b"x" * 16385)[:9], FRAME_SIZE_ERROR),
    "CONTINUATION without HEADERS": (frame(9, 4, 1, b"\x88"), PROTOCOL_ERROR),
    "a frame inside a header block": (
        frame(1, 0, 1, b"\x88") + frame(6, 0, 0, b"12345678"),
        PROTOCOL_ERROR,
    ),
    "CONTINUATION of another stream": (frame(1, 0, 1, b"\x88") + frame(9, 4, 3), PROTOCOL_ERROR),
    "PUSH_PROMISE": (frame(5, 4, 1, b"\x00\x00\x00\x02\x82\x87\x84"), PROTOCOL_ERROR),
    "WINDOW_UPDATE of 0": (frame(8, 0, 0, bytes(4)), PROTOCOL_ERROR),
    "connection window beyond 2^31-1": (frame(8, 0, 0, b"\x7f\xff\xff\xff"), FLOW_CONTROL_ERROR),
    "WINDOW_UPDATE of 3 bytes": (frame(8, 0, 0, bytes(3)), FRAME_SIZE_ERROR),
    "MAX_FRAME_SIZE too small": (setting(5, 16383), PROTOCOL_ERROR),
    "MAX_FRAME_SIZE too large": (setting(5, 1 << 24), PROTOCOL_ERROR),
    "INITIAL_WINDOW_SIZE beyond 2^31-1": (setting(4, 1 << 31), FLOW_CONTROL_ERROR),
    "a stream window beyond 2^31-1": (
        frame(8, 0, 1, (10).to_bytes(4)) + setting(4, (1 << 31) - 1),
        FLOW_CONTROL_ERROR,
    ),
    "ENABLE_PUSH from a server": (setting(2, 1), PROTOCOL_ERROR),
    "SETTINGS of 5 bytes": (frame(4, 0, 0, bytes(5)), FRAME_SIZE_ERROR),
    "SETTINGS ACK with a payload": (frame(4, 1, 0, bytes(6)), FRAME_SIZE_ERROR),
    "SETTINGS on a stream": (frame(4, 0, 1), PROTOCOL_ERROR),
    "PING of 7 bytes": (frame(6, 0, 0, bytes(7)), FRAME_SIZE_ERROR),
    "HPACK index beyond the tables": (frame(1, 4, 1, b"\xbf"), COMPRESSION_ERROR),
    "truncated HPACK": (frame(1, 4, 1, b"\x40\x05ab"), COMPRESSION_ERROR),
    "HEADERS on a server-initiated stream": (frame(1, 5, 2, b"\x88"), PROTOCOL_ERROR),
    "HEADERS on stream 0": (frame(1, 5, 0, b"\x88"), PROTOCOL_ERROR),
    "DATA on a stream never opened": (frame(0, 0, 7, b"x"), PROTOCOL_ERROR),
    "DATA on stream 0": (frame(0, 0, 0, b"x"), PROTOCOL_ERROR),
    "padding as long as the frame": (frame(0, 8, 1, b"\x04abc"), PROTOCOL_ERROR),
    "RST_STREAM on stream 0": (frame(3, 0, 0, bytes(4)), PROTOCOL_ERROR),
    "GOAWAY of 4 bytes": (frame(7, 0, 0, bytes(4)), FRAME_SIZE_ERROR),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_connection_error_reports_and_sends_goaway_with_its_code(name: str) -> None:
    data, code = MALFORMED[name]
    pair = Pair()
    pair.client.send_request(REQUEST, b"{}")  # stream 1 open
    pair.pump()
    events = pair.client.receive(data)
    assert events[-1][:2] == (ERROR, code) and isinstance(events[-1][2], str)
    assert [e[0] for e in events] == [ERROR]
    pair.to_server()
    goaway = [e for e in pair.server_events if isinstance(e, h2.events.ConnectionTerminated)]
    assert [e.error_code for e in goaway] == [code]
    assert pair.client.closed and pair.client.receive(frame(6, 0, 0, bytes(8))) == []
    assert pair.client.data_to_send() == b""


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(8, 0, 1, bytes(4)), PROTOCOL_ERROR),  # WINDOW_UPDATE of 0
        (frame(8, 0, 1, b"\x7f\xff\xff\xff"), FLOW_CONTROL_ERROR),  # window beyond 2^31-1
        (frame(1, 5, 1, b"\x82"), PROTOCOL_ERROR),  # a response without :status
        (frame(1, 5, 1, b"\x08\x03100"), PROTOCOL_ERROR),  # a 1xx response that ends
    ],
)
def test_a_stream_error_resets_only_that_stream(data: bytes, code: int) -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    assert pair.client.receive(data) == [(RESET, sid, code)]
    pair.to_server()
    reset = [e for e in pair.server_events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in reset] == [(sid, code)]
    other = pair.client.send_request(REQUEST, b"{}")  # the connection goes on
    pair.pump()
    pair.respond(other)
    assert pair.pump() == [(RESPONSE, other, 200, OK[1:]), (ENDED, other)]


def test_data_beyond_the_window_we_granted_is_a_flow_control_error() -> None:
    pair = Pair()
    pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.client._connection_receive = 10  # as if the server had sent ~1 MiB unacknowledged
    events = pair.client.receive(frame(0, 0, 1, b"x" * 11))
    assert events[-1][:2] == (ERROR, FLOW_CONTROL_ERROR)


def test_priority_and_unknown_frames_are_ignored() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    data = frame(2, 0, sid, bytes(5)) + frame(0xFA, 0xFF, 0, b"whatever")
    assert pair.client.receive(data) == []
    pair.respond(sid)
    assert pair.pump() == [(RESPONSE, sid, 200, OK[1:]), (ENDED, sid)]


def test_padded_headers_with_priority() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    payload = b"\x03" + bytes(5) + b"\x88" + b"pad"  # pad length, priority, :status 200, padding
    assert pair.client.receive(frame(1, 0x2D, sid, payload)) == [
        (RESPONSE, sid, 200, []),
        (ENDED, sid),
    ]


def test_close_says_goaway_and_ends_the_conversation() -> None:
    pair = Pair()
    sid = pair.client.send_request(REQUEST, b"{}")
    pair.pump()
    pair.client.close()
    pair.client.reset_stream(sid)  # nothing more after the GOAWAY
    pair.to_server()
    goaway = [e for e in pair.server_events if isinstance(e, h2.events.ConnectionTerminated)]
    assert [(e.error_code, e.last_stream_id) for e in goaway] == [(0, 0)]
    assert pair.client.receive(frame(1, 5, sid, b"\x88") + frame(6, 0, 0, bytes(8))) == []
    assert pair.client.data_to_send() == b""
