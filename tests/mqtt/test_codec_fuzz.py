"""Fuzzing: arbitrary bytes and mutated valid packets may raise only ProtocolError.

Any other exception (IndexError, struct.error, UnicodeDecodeError, BufferError, ...) is a bug.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_strategies import packets

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.connection import ServerConnection
from lantern.mqtt.errors import ProtocolError
from lantern.mqtt.packets import Connect

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(decoder: Decoder, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            while decoder.next_packet() is not None:
                pass
    except ProtocolError as exc:
        assert "[MQTT-" in str(exc)
        assert 0x80 <= exc.reason_code <= 0xA2


def _decoders() -> list[Decoder]:
    return [
        Decoder(),
        Decoder(protocol_level=4, expect_connect=False),
        Decoder(protocol_level=5, expect_connect=False),
    ]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=4))
def test_random_bytes(chunks: list[bytes]) -> None:
    for decoder in _decoders():
        _run(decoder, chunks)


@FUZZ
@given(st.binary(max_size=60))
def test_random_body_behind_connect(body: bytes) -> None:
    # Valid CONNECT first so the bytes reach the per-level decoders on the server side too.
    for level in (4, 5):
        decoder = Decoder()
        _run(decoder, [encode(Connect("c", level), level), body])


@st.composite
def mutated(draw: st.DrawFn, level: int) -> bytes:
    wire = bytearray(encode(draw(packets(level)), level))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate")))
        if not wire:
            break
        i = draw(st.integers(0, len(wire) - 1))
        if op == "flip":
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            wire[i] = draw(st.integers(0, 255))
        elif op == "insert":
            wire.insert(i, draw(st.integers(0, 255)))
        elif op == "delete":
            del wire[i]
        else:
            del wire[i:]
    return bytes(wire)


@pytest.mark.parametrize("level", [4, 5])
@FUZZ
@given(data=st.data())
def test_mutated_packets(level: int, data: st.DataObject) -> None:
    wire = data.draw(mutated(level))
    _run(Decoder(protocol_level=level, expect_connect=False), [wire])
    # Also through the server connection, after a valid CONNECT.
    conn = ServerConnection(topic_alias_maximum=5, receive_maximum=3)
    conn.receive_data(encode(Connect("c", level), level) + wire)
    try:
        while conn.next_event() is not None:
            pass
    except ProtocolError:
        pass


@pytest.mark.parametrize("level", [4, 5])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_connect(level: int, data: st.DataObject) -> None:
    from mqtt_strategies import connects

    wire = bytearray(encode(data.draw(connects(level)), level))
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] = data.draw(st.integers(0, 255))
    _run(Decoder(), [bytes(wire)])
