"""Hypothesis strategies for every MQTT packet type at protocol levels 4 and 5."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lantern.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
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
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import (
    AUTH_CODES,
    CONNACK_CODES,
    DISCONNECT_CODES,
    PUBACK_CODES,
    PUBREL_CODES,
    SUBACK_CODES,
    UNSUBACK_CODES,
    ReasonCode,
)

MAX_VARINT = 268_435_455
_chars = st.characters(codec="utf-8", exclude_characters="\x00")
texts = st.text(_chars, max_size=12)
topic_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00+#"),
    min_size=1,
    max_size=20,
)
_level_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00+#/"), max_size=6)
_filter_level = st.one_of(st.just("+"), _level_text)


@st.composite
def topic_filters(draw: st.DrawFn, allow_shared: bool = True) -> str:
    """A valid topic filter, sometimes with '#', '+' or a $share prefix."""
    levels = draw(st.lists(_filter_level, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    result = "/".join(levels)
    if not result:
        result = "a"
    if allow_shared and draw(st.integers(0, 4)) == 0:
        group = draw(_level_text.filter(bool))
        result = f"$share/{group}/{result}"
    return result


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
binary = st.binary(max_size=16)

PROPERTY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": st.integers(0, 1),
    "message_expiry_interval": u32,
    "content_type": texts,
    "response_topic": topic_names,
    "correlation_data": binary,
    "session_expiry_interval": u32,
    "assigned_client_identifier": texts,
    "server_keep_alive": u16,
    "authentication_method": texts,
    "authentication_data": binary,
    "request_problem_information": st.booleans(),
    "will_delay_interval": u32,
    "request_response_information": st.booleans(),
    "response_information": texts,
    "server_reference": texts,
    "reason_string": texts,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": st.integers(0, 1),
    "retain_available": st.booleans(),
    "maximum_packet_size": st.integers(1, 0xFFFFFFFF),
    "wildcard_subscription_available": st.booleans(),
    "subscription_identifier_available": st.booleans(),
    "shared_subscription_available": st.booleans(),
    "user_properties": st.lists(st.tuples(texts, texts), max_size=3).map(tuple),
}

# Property names each packet may carry (MQTT 5.0 §2.2.2.2), written out independently.
ALLOWED: dict[str, tuple[str, ...]] = {
    "CONNECT": (
        "session_expiry_interval",
        "authentication_method",
        "authentication_data",
        "request_problem_information",
        "request_response_information",
        "receive_maximum",
        "topic_alias_maximum",
        "maximum_packet_size",
    ),
    "CONNACK": (
        "session_expiry_interval",
        "assigned_client_identifier",
        "server_keep_alive",
        "authentication_method",
        "authentication_data",
        "response_information",
        "server_reference",
        "reason_string",
        "receive_maximum",
        "topic_alias_maximum",
        "maximum_qos",
        "retain_available",
        "maximum_packet_size",
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
    ),
    "WILL": (
        "payload_format_indicator",
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "will_delay_interval",
    ),
    "PUBLISH": (
        "payload_format_indicator",
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "topic_alias",
    ),
    "ACK": ("reason_string",),
    "SUBSCRIBE": (),
    "UNSUBSCRIBE": (),
    "DISCONNECT": ("session_expiry_interval", "server_reference", "reason_string"),
    "AUTH": ("authentication_method", "authentication_data", "reason_string"),
}


def properties(packet: str, max_sub_ids: int = 0) -> st.SearchStrategy[Properties]:
    """Properties allowed on ``packet`` (any subset), plus user properties."""
    names = (*ALLOWED[packet], "user_properties")
    optional = {name: PROPERTY_VALUES[name] for name in names}
    if max_sub_ids:
        optional["subscription_identifiers"] = st.lists(
            st.integers(1, MAX_VARINT), min_size=1, max_size=max_sub_ids
        ).map(tuple)
    return st.fixed_dictionaries({}, optional=optional).map(lambda d: Properties(**d))


def _props(level: int, packet: str, max_sub_ids: int = 0) -> st.SearchStrategy[Properties]:
    return properties(packet, max_sub_ids) if level == 5 else st.just(EMPTY_PROPERTIES)


def _codes(level: int, allowed: frozenset[ReasonCode]) -> st.SearchStrategy[ReasonCode]:
    return st.sampled_from(sorted(allowed)) if level == 5 else st.just(ReasonCode.SUCCESS)


packet_ids = st.integers(1, 0xFFFF)
qos = st.integers(0, 2)


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    will = None
    if draw(st.booleans()):
        will = Will(
            draw(topic_names),
            draw(binary),
            draw(qos),
            draw(st.booleans()),
            draw(_props(level, "WILL")),
        )
    username = draw(st.none() | texts)
    password = draw(st.none() | binary)
    if level == 4 and username is None:
        password = None
    return Connect(
        draw(texts),
        level,
        draw(st.booleans()),
        draw(u16),
        username,
        password,
        will,
        draw(_props(level, "CONNECT")),
    )


_V4_CONNACK = (0x00, 0x84, 0x85, 0x88, 0x86, 0x87)


@st.composite
def connacks(draw: st.DrawFn, level: int) -> Connack:
    if level == 5:
        rc = draw(st.sampled_from(sorted(CONNACK_CODES)))
    else:
        rc = ReasonCode(draw(st.sampled_from(_V4_CONNACK)))
    present = draw(st.booleans()) and rc == ReasonCode.SUCCESS
    return Connack(present, rc, draw(_props(level, "CONNACK")))


@st.composite
def publishes(draw: st.DrawFn, level: int, max_sub_ids: int = 3) -> Publish:
    q = draw(qos)
    props = draw(_props(level, "PUBLISH", max_sub_ids))
    topic = draw(topic_names)
    if props.topic_alias is not None and draw(st.booleans()):
        topic = ""
    return Publish(
        topic,
        draw(st.binary(max_size=64)),
        q,
        draw(st.booleans()),
        draw(st.booleans()) if q else False,
        draw(packet_ids) if q else None,
        props,
    )


@st.composite
def subscription_requests(draw: st.DrawFn, level: int) -> SubscriptionRequest:
    topic_filter = draw(topic_filters())
    if level == 4:
        return SubscriptionRequest(topic_filter, draw(qos))
    shared = topic_filter.startswith("$share/")
    return SubscriptionRequest(
        topic_filter,
        draw(qos),
        False if shared else draw(st.booleans()),
        draw(st.booleans()),
        draw(st.integers(0, 2)),
    )


def packets(level: int) -> st.SearchStrategy[Packet]:
    """Any packet valid at ``level`` (4 or 5)."""
    ack_props = _props(level, "ACK")
    options: list[st.SearchStrategy[Any]] = [
        connects(level),
        connacks(level),
        publishes(level),
        st.builds(Puback, packet_ids, _codes(level, PUBACK_CODES), ack_props),
        st.builds(Pubrec, packet_ids, _codes(level, PUBACK_CODES), ack_props),
        st.builds(Pubrel, packet_ids, _codes(level, PUBREL_CODES), ack_props),
        st.builds(Pubcomp, packet_ids, _codes(level, PUBREL_CODES), ack_props),
        st.builds(
            Subscribe,
            packet_ids,
            st.lists(subscription_requests(level), min_size=1, max_size=4).map(tuple),
            _props(level, "SUBSCRIBE", 1),
        ),
        st.builds(
            Suback,
            packet_ids,
            st.lists(
                st.sampled_from(
                    sorted(SUBACK_CODES) if level == 5 else [ReasonCode(c) for c in (0, 1, 2, 0x80)]
                ),
                min_size=1,
                max_size=4,
            ).map(tuple),
            _props(level, "ACK"),
        ),
        st.builds(
            Unsubscribe,
            packet_ids,
            st.lists(topic_filters(), min_size=1, max_size=4).map(tuple),
            _props(level, "UNSUBSCRIBE"),
        ),
        st.builds(
            Unsuback,
            packet_ids,
            st.lists(st.sampled_from(sorted(UNSUBACK_CODES)), min_size=1, max_size=4).map(tuple)
            if level == 5
            else st.just(()),
            _props(level, "ACK"),
        ),
        st.just(Pingreq()),
        st.just(Pingresp()),
        st.builds(Disconnect, _codes(level, DISCONNECT_CODES), _props(level, "DISCONNECT")),
    ]
    if level == 5:
        options.append(st.builds(Auth, st.sampled_from(sorted(AUTH_CODES)), properties("AUTH")))
    return st.one_of(options)
