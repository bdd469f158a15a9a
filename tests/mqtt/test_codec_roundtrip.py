"""Every packet type, at both protocol levels, survives encode -> decode unchanged."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_strategies import ALLOWED, packets

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.packets import (
    PACKET_TYPES,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    Will,
)
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_one(data: bytes, level: int) -> Packet:
    decoder = Decoder(protocol_level=level, expect_connect=False)
    decoder.feed(data)
    packet = decoder.next_packet()
    assert packet is not None
    assert decoder.buffered == 0
    assert decoder.next_packet() is None
    return packet


@pytest.mark.parametrize("level", [4, 5])
@SETTINGS
@given(data=st.data())
def test_roundtrip(level: int, data: st.DataObject) -> None:
    packet = data.draw(packets(level))
    wire = encode(packet, level)
    decoded = _decode_one(wire, level)
    assert decoded == packet
    # The encoding is canonical: re-encoding the decoded packet gives the same bytes.
    assert encode(decoded, level) == wire


@pytest.mark.parametrize("level", [4, 5])
def test_every_packet_type_is_generated(level: int) -> None:
    seen: set[type] = set()

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(packets(level))
    def collect(packet: Packet) -> None:
        seen.add(type(packet))

    collect()
    expected = set(PACKET_TYPES.values())
    if level == 4:
        expected -= {PACKET_TYPES[15]}
    assert seen == expected


def test_strategies_cover_every_property() -> None:
    covered = {name for names in ALLOWED.values() for name in names}
    covered |= {"user_properties", "subscription_identifiers"}
    assert covered == {f.name for f in fields(Properties)}


def test_server_decoder_learns_level_from_connect() -> None:
    for level in (4, 5):
        decoder = Decoder()
        decoder.feed(encode(Connect("c", level), level) + encode(Publish("t", b"x"), level))
        assert isinstance(decoder.next_packet(), Connect)
        assert decoder.protocol_level == level
        assert decoder.next_packet() == Publish("t", b"x")


def _full(packet: str) -> Properties:
    """Every property allowed on ``packet``, set to a non-default value."""
    sample = {
        "payload_format_indicator": 1,
        "message_expiry_interval": 0xFFFFFFFF,
        "content_type": "application/json",
        "response_topic": "reply/here",
        "correlation_data": b"\x00\x01",
        "session_expiry_interval": 3600,
        "assigned_client_identifier": "auto-1",
        "server_keep_alive": 120,
        "authentication_method": "SCRAM-SHA-1",
        "authentication_data": b"\xff",
        "request_problem_information": False,
        "will_delay_interval": 5,
        "request_response_information": True,
        "response_information": "resp/",
        "server_reference": "other:1883",
        "reason_string": "because",
        "receive_maximum": 100,
        "topic_alias_maximum": 10,
        "topic_alias": 3,
        "maximum_qos": 1,
        "retain_available": False,
        "maximum_packet_size": 131072,
        "wildcard_subscription_available": True,
        "subscription_identifier_available": False,
        "shared_subscription_available": True,
    }
    values: dict[str, Any] = {name: sample[name] for name in ALLOWED[packet]}
    values["user_properties"] = (("k", "v"), ("k", "v2"), ("é", ""))
    return Properties(**values)


FULL_PACKETS: list[Packet] = [
    Connect(
        "c", 5, False, 10, "u", b"p", Will("w/t", b"bye", 1, True, _full("WILL")), _full("CONNECT")
    ),
    Connack(True, ReasonCode.SUCCESS, _full("CONNACK")),
    Publish("a/b", b"x", 1, packet_id=1, properties=_full("PUBLISH")),
    Publish("a/b", b"x", properties=Properties(subscription_identifiers=(1, 268_435_455))),
    Puback(1, ReasonCode.QUOTA_EXCEEDED, _full("ACK")),
    Pubrec(1, ReasonCode.SUCCESS, _full("ACK")),
    Pubrel(1, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND, _full("ACK")),
    Pubcomp(1, ReasonCode.SUCCESS, _full("ACK")),
    Subscribe(
        1,
        (SubscriptionRequest("a/#", 2, True, True, 2),),
        Properties(subscription_identifiers=(7,), user_properties=(("a", "b"),)),
    ),
    Suback(1, (ReasonCode.GRANTED_QOS_2, ReasonCode.NOT_AUTHORIZED), _full("ACK")),
    Unsubscribe(1, ("a/+",), _full("UNSUBSCRIBE")),
    Unsuback(1, (ReasonCode.NO_SUBSCRIPTION_EXISTED,), _full("ACK")),
    Disconnect(ReasonCode.SERVER_MOVED, _full("DISCONNECT")),
    Auth(ReasonCode.CONTINUE_AUTHENTICATION, _full("AUTH")),
]


@pytest.mark.parametrize("packet", FULL_PACKETS, ids=lambda p: type(p).__name__)
def test_roundtrip_with_every_allowed_property(packet: Packet) -> None:
    assert _decode_one(encode(packet, 5), 5) == packet


def test_known_encodings() -> None:
    assert encode(Pingreq(), 4) == b"\xc0\x00"
    assert encode(Puback(10), 4) == b"\x40\x02\x00\x0a"
    assert encode(Puback(10, ReasonCode.NO_MATCHING_SUBSCRIBERS), 5) == b"\x40\x03\x00\x0a\x10"
    assert encode(Connack(False, ReasonCode.BAD_USER_NAME_OR_PASSWORD), 4) == b"\x20\x02\x00\x04"
    assert encode(Connack(True), 5) == b"\x20\x03\x01\x00\x00"
    assert encode(Disconnect(), 5) == b"\xe0\x00"
    assert encode(Publish("a", b"hi", 1, retain=True, packet_id=2), 4) == (
        b"\x33\x07\x00\x01a\x00\x02hi"
    )
    assert encode(Suback(3, (ReasonCode.NOT_AUTHORIZED,)), 4) == b"\x90\x03\x00\x03\x80"
