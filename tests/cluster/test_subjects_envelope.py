"""Topic/subject encoding and the message envelope, without a network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lantern.cluster.envelope import EnvelopeError, decode, encode
from lantern.cluster.subjects import (
    MAX_SUBJECT,
    filter_subjects,
    topic_from_subject,
    topic_subject,
)
from lantern.mqtt.broker import Message
from lantern.mqtt.properties import Properties

P = "lantern.t"

levels = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/+#\x00"),
    max_size=8,
)


@given(st.lists(levels, min_size=1, max_size=6))
def test_every_topic_round_trips_through_a_valid_subject(parts: list[str]) -> None:
    topic = "/".join(parts)
    subject = topic_subject(P, topic)
    tokens = subject.split(".")
    assert all(t and not any(c in t for c in " \t\r\n*>") for t in tokens)
    assert topic_from_subject(P, subject) == topic


def test_filters_become_subjects_that_keep_mqtt_wildcard_and_dollar_rules() -> None:
    assert filter_subjects(P, "#") == [f"{P}.m.>"]
    assert filter_subjects(P, "a/#") == [f"{P}.m.a.>", f"{P}.m.a"]
    assert filter_subjects(P, "+/b") == [f"{P}.m.*.b"]
    assert filter_subjects(P, "$SYS/#") == [f"{P}.s.$SYS.>", f"{P}.s.$SYS"]
    assert topic_subject(P, "$SYS/x").startswith(f"{P}.s.")  # never under "m": no # match
    assert topic_subject(P, "a.b") == f"{P}.m.a%2Eb"


def test_topics_too_long_for_a_subject_take_the_broadcast_subject() -> None:
    long_topic = "x" * (MAX_SUBJECT + 1)
    assert topic_subject(P, long_topic) == f"{P}.long"
    assert filter_subjects(P, long_topic) == []


def test_envelope_carries_what_delivery_needs() -> None:
    props = Properties(
        payload_format_indicator=1,
        message_expiry_interval=60,
        content_type="text/plain",
        response_topic="reply/here",
        correlation_data=b"\x01\x02",
        user_properties=(("k", "v"), ("k", "w")),
    )
    message = Message("a/b", b"payload", 2, True, props, sender="dev-1", now=100.0)
    data = encode(message, "node-x", 42, now=110.0)
    env = decode(data, now=500.0)
    assert (env.origin, env.seq) == ("node-x", 42)
    got = env.message
    assert (got.topic, got.payload, got.qos, got.retain, got.sender) == (
        "a/b",
        b"payload",
        2,
        True,
        "dev-1",
    )
    assert got.properties.message_expiry_interval == 50  # the time left when sent
    assert got.properties.user_properties == (("k", "v"), ("k", "w"))
    assert got.properties.correlation_data == b"\x01\x02"
    assert got.expires_at == 550.0


@pytest.mark.parametrize("data", [b"", b"\x02" + b"\x00" * 20, b"\x01\x00"])
def test_garbage_is_refused_with_a_clear_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode(data, 0.0)
