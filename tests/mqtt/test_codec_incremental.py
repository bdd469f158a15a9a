"""The decoder is incremental: prefixes need more data, chunking never changes the result."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_strategies import packets

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.packets import Connect, Packet, Publish

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _client_decoder(level: int) -> Decoder:
    return Decoder(protocol_level=level, expect_connect=False)


def _drain(decoder: Decoder) -> list[Packet]:
    out = []
    while (packet := decoder.next_packet()) is not None:
        out.append(packet)
    return out


@pytest.mark.parametrize("level", [4, 5])
@SETTINGS
@given(data=st.data())
def test_every_prefix_needs_more_data(level: int, data: st.DataObject) -> None:
    wire = encode(data.draw(packets(level)), level)
    for cut in range(len(wire)):
        decoder = _client_decoder(level)
        decoder.feed(wire[:cut])
        assert decoder.next_packet() is None
        assert decoder.buffered == cut


@pytest.mark.parametrize("level", [4, 5])
@SETTINGS
@given(data=st.data())
def test_byte_at_a_time_gives_the_same_packets(level: int, data: st.DataObject) -> None:
    sent = data.draw(st.lists(packets(level), min_size=1, max_size=4))
    wire = b"".join(encode(p, level) for p in sent)
    decoder = _client_decoder(level)
    received: list[Packet] = []
    for i in range(len(wire)):
        decoder.feed(wire[i : i + 1])
        received += _drain(decoder)
    assert received == sent
    assert decoder.buffered == 0


@pytest.mark.parametrize("level", [4, 5])
@SETTINGS
@given(data=st.data())
def test_random_chunks_and_one_chunk(level: int, data: st.DataObject) -> None:
    sent = data.draw(st.lists(packets(level), min_size=1, max_size=5))
    wire = b"".join(encode(p, level) for p in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder = _client_decoder(level)
    received: list[Packet] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.feed(wire[start:end])
        received += _drain(decoder)
    assert received == sent

    whole = _client_decoder(level)
    whole.feed(wire)
    assert _drain(whole) == sent


@pytest.mark.parametrize("level", [4, 5])
def test_server_decoder_prefixes_of_connect(level: int) -> None:
    wire = encode(Connect("dev-1", level, username="u", password=b"p"), level)
    for cut in range(len(wire)):
        decoder = Decoder()
        decoder.feed(wire[:cut])
        assert decoder.next_packet() is None
        assert decoder.protocol_level is None


def test_large_publish_across_many_feeds() -> None:
    packet = Publish("big/topic", bytes(range(256)) * 400, qos=1, packet_id=9)
    wire = encode(packet, 5)
    assert len(wire) > 100_000
    decoder = _client_decoder(5)
    for i in range(0, len(wire), 1500):
        assert decoder.next_packet() is None
        decoder.feed(wire[i : i + 1500])
    assert decoder.next_packet() == packet
    assert decoder.next_packet() is None


def test_remaining_length_boundaries() -> None:
    # Bodies whose remaining length needs 1, 2 and 3 varint bytes.
    for size in (0, 120, 127, 128, 16_383, 16_384, 100_000):
        packet = Publish("t", b"x" * size)
        wire = encode(packet, 4)
        decoder = Decoder(max_packet_size=200_000, protocol_level=4, expect_connect=False)
        decoder.feed(wire)
        assert decoder.next_packet() == packet
