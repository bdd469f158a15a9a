"""Topic name / filter validation, shared subscriptions and the reference matcher."""

from __future__ import annotations

import pytest

from lantern.mqtt.errors import TopicFilterInvalid, TopicNameInvalid
from lantern.mqtt.reason_codes import ReasonCode, connack_v311_return_code
from lantern.mqtt.topics import (
    parse_shared,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)


@pytest.mark.parametrize("name", ["a", "/", "a/b/c", "$aws/things/t/jobs/get", " ", "a//b"])
def test_valid_names(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize("name", ["", "a/+", "#", "a/b#"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(TopicNameInvalid):
        validate_topic_name(name)


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+", "a/#", "+/+", "/+", "a/+/b", "$share/g/a/#", "$share/g/#", "$share", "a//#"],
)
def test_valid_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    ["", "a/#/b", "a+", "a/b+", "##", "a#", "$share/g", "$share/g/", "$share//a", "$share/#/a"],
)
def test_invalid_filters(topic_filter: str) -> None:
    with pytest.raises(TopicFilterInvalid) as info:
        validate_topic_filter(topic_filter)
    assert info.value.reason_code == ReasonCode.TOPIC_FILTER_INVALID


def test_parse_shared() -> None:
    assert parse_shared("$share/grp/a/+/c") == ("grp", "a/+/c")
    assert parse_shared("a/b") == (None, "a/b")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/#", "sport", True),
        ("sport/#", "sport/tennis/p1", True),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("#", "$SYS/x", False),
        ("+/monitor", "$SYS/monitor", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_connack_return_codes() -> None:
    rc = ReasonCode
    assert connack_v311_return_code(rc.SUCCESS) == 0
    assert connack_v311_return_code(rc.UNSUPPORTED_PROTOCOL_VERSION) == 1
    assert connack_v311_return_code(rc.CLIENT_IDENTIFIER_NOT_VALID) == 2
    for code in (rc.SERVER_UNAVAILABLE, rc.SERVER_BUSY, rc.SERVER_SHUTTING_DOWN):
        assert connack_v311_return_code(code) == 3
    assert connack_v311_return_code(rc.BAD_USER_NAME_OR_PASSWORD) == 4
    assert connack_v311_return_code(rc.NOT_AUTHORIZED) == 5
    assert connack_v311_return_code(rc.BANNED) == 5
