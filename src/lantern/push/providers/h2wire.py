"""The client side of HTTP/2 framing (RFC 9113), sans I/O; HPACK is the ``hpack`` library's.

Just what a client of one request/response per stream needs: requests out (HEADERS, CONTINUATION,
DATA under flow control), responses in, SETTINGS, PING, WINDOW_UPDATE, RST_STREAM and GOAWAY.
Server push is disabled (a PUSH_PROMISE is a PROTOCOL_ERROR); PRIORITY and unknown frame types
are ignored. Why not ``h2``: see :mod:`lantern.push.providers.h2client`.

Feed received bytes to :meth:`H2Wire.receive`, which returns events as tuples (cheaper than
objects on this hot path), their first item one of the event kinds below; write
:meth:`H2Wire.data_to_send` out after every call. A connection error (the server broke the
protocol) queues a GOAWAY with its error code and returns an ``ERROR`` event; the connection is
then of no further use.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any, cast

import hpack

from lantern.errors import LanternError

# hpack logs header values at DEBUG (provider JWTs, device tokens): it speaks only of problems.
logging.getLogger("hpack").setLevel(logging.WARNING)

# Events: (kind, ...) tuples.
RESPONSE = 1  # (RESPONSE, stream_id, status, [(name, value), ...] without :status); 1xx skipped
DATA = 2  # (DATA, stream_id, data)
ENDED = 3  # (ENDED, stream_id): the response is complete, the stream is gone
RESET = 4  # (RESET, stream_id, error_code): reset by the server (or by us for its error)
SETTINGS = 5  # (SETTINGS,): the server's settings applied (max_concurrent_streams may change)
PING_ACK = 6  # (PING_ACK, opaque_data)
GOAWAY = 7  # (GOAWAY, error_code, last_stream_id, debug_data)
ERROR = 8  # (ERROR, error_code, detail): the server broke the protocol; GOAWAY queued
Event = tuple[Any, ...]

# Error codes (RFC 9113 section 7).
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x0, 0x1, 0x3, 0x6
CANCEL, COMPRESSION_ERROR = 0x8, 0x9
_ERROR_NAMES = (  # by code
    "NO_ERROR PROTOCOL_ERROR INTERNAL_ERROR FLOW_CONTROL_ERROR SETTINGS_TIMEOUT STREAM_CLOSED "
    "FRAME_SIZE_ERROR REFUSED_STREAM CANCEL COMPRESSION_ERROR CONNECT_ERROR ENHANCE_YOUR_CALM "
    "INADEQUATE_SECURITY HTTP_1_1_REQUIRED"
)

_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS, _PUSH_PROMISE = 0, 1, 2, 3, 4, 5
_PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 6, 7, 8, 9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x4, 0x8, 0x20
_END_BOTH = _END_HEADERS | _END_STREAM
_STREAM_ONLY = frozenset((_DATA, _HEADERS, _RST_STREAM, _PUSH_PROMISE, _CONTINUATION))
_CONNECTION_ONLY = frozenset((_SETTINGS, _PING, _GOAWAY))
_FIXED_SIZE = {_RST_STREAM: 4, _PING: 8, _WINDOW_UPDATE: 4}

_FRAME = struct.Struct(">IBI")  # length << 8 | type, flags, stream id: the 9-byte frame header
_SETTING = struct.Struct(">HI")
_GOAWAY_HEAD = struct.Struct(">II")  # last stream id, error code
_MAX_WINDOW = _MAX_STREAM_ID = (1 << 31) - 1
_MAX_FRAME = 16384  # ours (SETTINGS_MAX_FRAME_SIZE, never raised) and the server's default
_DEFAULT_WINDOW = 65535
_HEADER_TABLE = 4096  # we never let the encoder's table grow past the default: cheaper search
_MAX_HEADER_LIST = 1 << 16  # hpack.Decoder's limit, announced to the server
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SETTINGS_ACK = _FRAME.pack(_SETTINGS, _ACK, 0)


def error_name(code: int) -> str:
    """``CANCEL`` for 0x8; unknown codes in hex."""
    names = _ERROR_NAMES.split()
    return names[code] if 0 <= code < len(names) else f"0x{code:x}"


class H2WireError(LanternError):
    """Root of the HTTP/2 framing layer's errors."""


class NoStreamIdsError(H2WireError):
    """All 2^30 client stream ids are used: open a new connection."""


class TooManyStreamsError(H2WireError):
    """The server's MAX_CONCURRENT_STREAMS are all open."""


class _ConnectionError(H2WireError):
    def __init__(self, h2_code: int, detail: str) -> None:
        super().__init__(detail)
        self.h2_code = h2_code  # the HTTP/2 error code sent in GOAWAY


class _Stream:
    __slots__ = ("pending", "receive_window", "responded", "send_window")

    def __init__(self, send_window: int, receive_window: int) -> None:
        self.send_window = send_window
        self.receive_window = receive_window
        self.pending: memoryview | None = None  # request body waiting for flow-control window
        self.responded = False  # final (non-1xx) response headers seen


class H2Wire:
    """One client HTTP/2 connection's state; ``receive_window`` is granted per stream and for
    the connection, and topped up when half of it is used."""

    def __init__(self, receive_window: int = 1 << 20) -> None:
        if not _DEFAULT_WINDOW < receive_window <= _MAX_WINDOW:
            raise ValueError("the receive window is more than 65535 bytes, at most 2^31-1")
        self.max_concurrent_streams = _MAX_STREAM_ID  # unlimited until the server's SETTINGS
        self.streams: dict[int, _Stream] = {}  # open streams (sent, response not complete)
        self.closed = False  # GOAWAY sent: no more frames in either direction
        self._receive_window = receive_window
        self._connection_receive = _DEFAULT_WINDOW  # what the server may still send us
        self._connection_send = _DEFAULT_WINDOW  # what we may still send
        self._initial_send = _DEFAULT_WINDOW  # the server's SETTINGS_INITIAL_WINDOW_SIZE
        self._max_send_frame = _MAX_FRAME  # the server's SETTINGS_MAX_FRAME_SIZE
        self._next_id = 1
        self._blocked: dict[int, _Stream] = {}  # streams with body waiting, in order
        self._block: bytearray | None = None  # header block awaiting CONTINUATION
        self._block_id = 0
        self._block_end = 0  # END_STREAM of the HEADERS frame that opened the block
        self._in = b""  # an incomplete frame
        self._out = bytearray()
        self._encoder = hpack.Encoder()  # without Huffman coding: see send_request
        self._table_resized = False
        self._decoder = hpack.Decoder(_MAX_HEADER_LIST)

    # --- sending -------------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the preface, our SETTINGS and the connection window raised to ours."""
        # ENABLE_PUSH, INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE
        settings = (2, 0), (4, self._receive_window), (6, _MAX_HEADER_LIST)
        out = self._out
        out += _PREFACE
        out += _FRAME.pack(len(settings) * 6 << 8 | _SETTINGS, 0, 0)
        for setting in settings:
            out += _SETTING.pack(*setting)
        self._window_update(0, self._receive_window - self._connection_receive)
        self._connection_receive = self._receive_window

    def send_request(self, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> int:
        """Queue a request on a new stream; body beyond the flow-control windows goes out when
        they open. Returns the stream id.

        Fields are HPACK-coded without Huffman (optional in HPACK; hpack's pure-Python Huffman
        encoder costs more CPU than the bytes it saves are worth); one given as an
        :class:`hpack.NeverIndexedHeaderTuple` stays out of the compression table, which suits
        values unique to a request (it would only push reusable entries out).
        """
        sid = self._next_id
        if sid > _MAX_STREAM_ID:
            raise NoStreamIdsError("all stream ids used")
        if len(self.streams) >= self.max_concurrent_streams:
            raise TooManyStreamsError(f"the server allows {self.max_concurrent_streams} streams")
        self._next_id = sid + 2
        if self._table_resized:  # encode() starts the block with the table size update
            self._table_resized = False
            block = self._encoder.encode(headers, huffman=False)
        else:  # the same, minus encode()'s per-field type juggling
            add, unindexed = self._encoder.add, hpack.NeverIndexedHeaderTuple
            block = b"".join([add(field, field.__class__ is unindexed) for field in headers])
        out = self._out
        size = len(block)
        if size <= self._max_send_frame:
            out += _FRAME.pack(size << 8 | _HEADERS, _END_HEADERS if body else _END_BOTH, sid)
            out += block
        else:
            self._split_headers(sid, block, 0 if body else _END_STREAM)
        stream = self.streams[sid] = _Stream(self._initial_send, self._receive_window)
        if body:
            size = len(body)
            if (  # all of it in one frame: the usual case
                size <= self._max_send_frame
                and size <= self._connection_send
                and size <= stream.send_window
            ):
                out += _FRAME.pack(size << 8 | _DATA, _END_STREAM, sid)
                out += body
                self._connection_send -= size
                stream.send_window -= size
                return sid
            stream.pending = memoryview(body)
            self._send_body(sid, stream)
        return sid

    def _split_headers(self, sid: int, block: bytes, flags: int) -> None:
        """HEADERS then CONTINUATION frames, each within the server's frame size."""
        out, step, kind = self._out, self._max_send_frame, _HEADERS
        for start in range(0, len(block), step):
            chunk = block[start : start + step]
            last = start + step >= len(block)
            out += _FRAME.pack(len(chunk) << 8 | kind, flags | (_END_HEADERS if last else 0), sid)
            out += chunk
            kind, flags = _CONTINUATION, 0

    def _send_body(self, sid: int, stream: _Stream) -> None:
        """As much of the stream's pending body as the windows allow; the rest stays blocked."""
        data = stream.pending
        out = self._out
        while data is not None:
            size = min(self._connection_send, stream.send_window, self._max_send_frame, len(data))
            if size <= 0:
                self._blocked[sid] = stream
                break
            last = size == len(data)
            out += _FRAME.pack(size << 8 | _DATA, _END_STREAM if last else 0, sid)
            out += data[:size]
            self._connection_send -= size
            stream.send_window -= size
            data = None if last else data[size:]
        stream.pending = data
        if data is None:
            self._blocked.pop(sid, None)

    def _send_blocked(self) -> None:
        for sid, stream in list(self._blocked.items()):
            if self._connection_send <= 0:
                return
            self._send_body(sid, stream)

    def reset_stream(self, sid: int, error_code: int = CANCEL) -> None:
        """Queue RST_STREAM for an open stream and forget it."""
        if self.streams.pop(sid, None) is not None:
            self._blocked.pop(sid, None)
            if not self.closed:
                self._out += _FRAME.pack(4 << 8 | _RST_STREAM, 0, sid)
                self._out += error_code.to_bytes(4)

    def ping(self, opaque: bytes) -> None:
        """Queue a PING; the server's answer is a ``PING_ACK`` event with the same 8 bytes."""
        if len(opaque) != 8:
            raise ValueError("PING data is 8 bytes")
        self._out += _FRAME.pack(8 << 8 | _PING, 0, 0)
        self._out += opaque

    def close(self, error_code: int = NO_ERROR) -> None:
        """Queue GOAWAY: no more streams, nothing more to send."""
        if not self.closed:
            self.closed = True
            self._out += _FRAME.pack(8 << 8 | _GOAWAY, 0, 0)
            self._out += _GOAWAY_HEAD.pack(0, error_code)  # the server opens no streams: last id 0

    def data_to_send(self) -> bytes:
        """Everything queued since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def _window_update(self, sid: int, increment: int) -> None:
        self._out += _FRAME.pack(4 << 8 | _WINDOW_UPDATE, 0, sid)
        self._out += increment.to_bytes(4)

    # --- receiving -----------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Parse what the server sent (any split of the byte stream) into events."""
        events: list[Event] = []
        if self.closed:
            return events
        buf = self._in + data if self._in else data
        pos, available = 0, len(buf)
        try:
            while available - pos >= 9:
                head, flags, sid = _FRAME.unpack_from(buf, pos)
                if head >> 8 > _MAX_FRAME:
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"a {head >> 8}-byte frame")
                end = pos + 9 + (head >> 8)
                if end > available:
                    break
                payload = buf[pos + 9 : end]
                pos = end
                kind = head & 0xFF
                sid &= _MAX_STREAM_ID
                if self._block is not None and kind != _CONTINUATION:
                    raise _ConnectionError(PROTOCOL_ERROR, "a frame inside a header block")
                if kind in _CONNECTION_ONLY if sid else kind in _STREAM_ONLY:
                    raise _ConnectionError(PROTOCOL_ERROR, f"frame type {kind} on stream {sid}")
                if _FIXED_SIZE.get(kind, len(payload)) != len(payload):
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"frame type {kind} of {len(payload)}")
                if kind == _HEADERS:
                    self._on_headers(flags, sid, payload, events)
                elif kind == _DATA:
                    self._on_data(flags, sid, payload, events)
                elif kind == _WINDOW_UPDATE:
                    self._on_window_update(sid, payload, events)
                elif kind == _SETTINGS:
                    self._on_settings(flags, payload, events)
                elif kind == _PING:
                    self._on_ping(flags, payload, events)
                elif kind == _RST_STREAM:
                    self._on_reset(sid, payload, events)
                elif kind == _GOAWAY:
                    if len(payload) < 8:
                        raise _ConnectionError(FRAME_SIZE_ERROR, "a GOAWAY under 8 bytes")
                    last, code = _GOAWAY_HEAD.unpack_from(payload)
                    events.append((GOAWAY, code, last & _MAX_STREAM_ID, payload[8:]))
                elif kind == _CONTINUATION:
                    self._on_continuation(flags, sid, payload, events)
                elif kind == _PUSH_PROMISE:
                    raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE with push disabled")
                # PRIORITY and unknown frame types are ignored.
        except _ConnectionError as error:
            self._in = b""
            self.close(error.h2_code)
            events.append((ERROR, error.h2_code, f"{error_name(error.h2_code)}: {error}"))
            return events
        self._in = buf[pos:]
        return events

    def _on_headers(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if flags & (_PADDED | _PRIORITY_FLAG):
            payload = _unpad(payload) if flags & _PADDED else payload
            if flags & _PRIORITY_FLAG:
                if len(payload) < 5:
                    raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for priority")
                payload = payload[5:]
        if flags & _END_HEADERS:
            self._on_header_block(sid, payload, flags & _END_STREAM, events)
        else:
            self._block, self._block_id = bytearray(payload), sid
            self._block_end = flags & _END_STREAM

    def _on_continuation(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if self._block is None or sid != self._block_id:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        self._block += payload
        if flags & _END_HEADERS:
            block, self._block = bytes(self._block), None
            self._on_header_block(sid, block, self._block_end, events)

    def _on_header_block(self, sid: int, block: bytes, end: int, events: list[Event]) -> None:
        try:  # decoded even for a forgotten stream: it updates the HPACK table
            headers = cast("list[tuple[bytes, bytes]]", self._decoder.decode(block, raw=True))
        except (hpack.HPACKError, IndexError) as exc:
            raise _ConnectionError(COMPRESSION_ERROR, type(exc).__name__) from None
        stream = self.streams.get(sid)
        if stream is None:
            self._check_was_opened(sid)
            return
        if not stream.responded:  # else trailers: only their END_STREAM matters here
            status = 0
            if headers and headers[0][0] == b":status" and headers[0][1].isdigit():
                status = int(headers[0][1])
            if 100 <= status < 200 and not end:
                return  # informational: the final response follows
            if not 200 <= status <= 999:
                self._stream_error(sid, PROTOCOL_ERROR, events)
                return
            stream.responded = True
            events.append((RESPONSE, sid, status, headers[1:]))
        if end:
            self._end(sid, stream, events)

    def _on_data(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        size = len(payload)  # padding included: all of it counts against the windows
        self._connection_receive -= size
        if self._connection_receive < 0:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        if self._connection_receive < self._receive_window >> 1:
            self._window_update(0, self._receive_window - self._connection_receive)
            self._connection_receive = self._receive_window
        data = _unpad(payload) if flags & _PADDED else payload
        stream = self.streams.get(sid)
        if stream is None:
            self._check_was_opened(sid)
            return
        stream.receive_window -= size
        if stream.receive_window < 0:
            self._stream_error(sid, FLOW_CONTROL_ERROR, events)
            return
        if data:
            events.append((DATA, sid, data))
        if flags & _END_STREAM:
            self._end(sid, stream, events)
        elif stream.receive_window < self._receive_window >> 1:
            self._window_update(sid, self._receive_window - stream.receive_window)
            stream.receive_window = self._receive_window

    def _on_window_update(self, sid: int, payload: bytes, events: list[Event]) -> None:
        increment = int.from_bytes(payload) & _MAX_WINDOW
        if sid == 0:
            if increment == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self._connection_send += increment
            if self._connection_send > _MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window beyond 2^31-1")
        else:
            stream = self.streams.get(sid)
            if stream is None:
                self._check_was_opened(sid)
                return
            if increment == 0:
                self._stream_error(sid, PROTOCOL_ERROR, events)
                return
            stream.send_window += increment
            if stream.send_window > _MAX_WINDOW:
                self._stream_error(sid, FLOW_CONTROL_ERROR, events)
                return
        if self._blocked:
            self._send_blocked()

    def _on_settings(self, flags: int, payload: bytes, events: list[Event]) -> None:
        if flags & _ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        for setting, value in _SETTING.iter_unpack(payload):
            if setting == 1:  # HEADER_TABLE_SIZE: the most our encoder's table may hold
                self._encoder.header_table_size = min(value, _HEADER_TABLE)
                self._table_resized = True
            elif setting == 2 and value != 0:  # ENABLE_PUSH: only clients may enable it
                raise _ConnectionError(PROTOCOL_ERROR, f"ENABLE_PUSH={value} from a server")
            elif setting == 3:
                self.max_concurrent_streams = value
            elif setting == 4:  # INITIAL_WINDOW_SIZE: applies to open streams too
                if value > _MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, f"INITIAL_WINDOW_SIZE={value}")
                delta, self._initial_send = value - self._initial_send, value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > _MAX_WINDOW:
                        raise _ConnectionError(FLOW_CONTROL_ERROR, "stream window beyond 2^31-1")
            elif setting == 5:
                if not _MAX_FRAME <= value <= 0xFFFFFF:
                    raise _ConnectionError(PROTOCOL_ERROR, f"MAX_FRAME_SIZE={value}")
                self._max_send_frame = value
        self._out += _SETTINGS_ACK
        events.append((SETTINGS,))
        if self._blocked:
            self._send_blocked()

    def _on_ping(self, flags: int, payload: bytes, events: list[Event]) -> None:
        if flags & _ACK:
            events.append((PING_ACK, payload))
        else:
            self._out += _FRAME.pack(8 << 8 | _PING, _ACK, 0)
            self._out += payload

    def _on_reset(self, sid: int, payload: bytes, events: list[Event]) -> None:
        if self.streams.pop(sid, None) is None:
            self._check_was_opened(sid)
            return
        self._blocked.pop(sid, None)
        events.append((RESET, sid, int.from_bytes(payload)))

    def _end(self, sid: int, stream: _Stream, events: list[Event]) -> None:
        if stream.pending is None:
            del self.streams[sid]
        else:  # answered before all of the body went: stop sending it
            self.reset_stream(sid, CANCEL)
        events.append((ENDED, sid))

    def _stream_error(self, sid: int, code: int, events: list[Event]) -> None:
        self.reset_stream(sid, code)
        events.append((RESET, sid, code))

    def _check_was_opened(self, sid: int) -> None:
        """A frame for a stream we no longer know is fine, one for a stream never opened not."""
        if not sid & 1 or sid >= self._next_id:
            raise _ConnectionError(PROTOCOL_ERROR, f"a frame on idle stream {sid}")


def _unpad(payload: bytes) -> bytes:
    """The content of a PADDED frame: strip the pad-length byte and the padding."""
    if not payload or payload[0] >= len(payload):
        raise _ConnectionError(PROTOCOL_ERROR, "padding as long as the frame")
    return payload[1 : len(payload) - payload[0]]
