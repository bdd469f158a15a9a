"""End to end against ``lantern serve``: things provisioned by claim use their shadows with the
AWS IoT Device SDK v2 (IotShadowClientV2 on MQTT 5 with the delta and documents streams,
IotShadowClient on MQTT 3.1.1) over mTLS; the iot-data HTTP routes and the CLI change the same
shadows and reach the same MQTT subscribers."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, V2ServiceException, iotshadow

from shadows.server import (
    TIMEOUT,
    Server,
    mqtt5_client,
    mqtt311_connection,
    serving,
    shadow_client_v2,
    stop_mqtt5,
)

QUIET = 0.5  # how long "no message" is waited for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("shadows-e2e")) as s:
        yield s


class Device:
    """A thing connected with MQTT 5, its IotShadowClientV2 and its delta/documents streams."""

    def __init__(self, server: Server, shadow_name: str | None = None) -> None:
        self.thing, certs = server.new_thing()
        self.client = mqtt5_client(server, self.thing, certs)
        self.shadows = shadow_client_v2(self.client)
        self.deltas: queue.Queue[Any] = queue.Queue()
        self.documents: queue.Queue[Any] = queue.Queue()
        self._streams = [
            self._open(self.deltas, shadow_name, delta=True),
            self._open(self.documents, shadow_name, delta=False),
        ]

    def _open(self, into: queue.Queue[Any], name: str | None, *, delta: bool) -> Any:
        ready = threading.Event()

        def status(event: Any) -> None:
            established = mqtt_request_response.SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED
            if event.type == established:
                ready.set()

        options = ServiceStreamOptions(
            incoming_event_listener=into.put, subscription_status_listener=status
        )
        s = self.shadows
        if name is None and delta:
            stream = s.create_shadow_delta_updated_stream(
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=self.thing), options
            )
        elif name is None:
            stream = s.create_shadow_updated_stream(
                iotshadow.ShadowUpdatedSubscriptionRequest(thing_name=self.thing), options
            )
        elif delta:
            stream = s.create_named_shadow_delta_updated_stream(
                iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest(
                    thing_name=self.thing, shadow_name=name
                ),
                options,
            )
        else:
            stream = s.create_named_shadow_updated_stream(
                iotshadow.NamedShadowUpdatedSubscriptionRequest(
                    thing_name=self.thing, shadow_name=name
                ),
                options,
            )
        stream.open()
        assert ready.wait(TIMEOUT)
        return stream

    def update(self, version: int | None = None, **sections: Any) -> Any:
        state = iotshadow.ShadowState(**sections)
        request = iotshadow.UpdateShadowRequest(thing_name=self.thing, state=state, version=version)
        return self.shadows.update_shadow(request).result(TIMEOUT)

    def get(self) -> Any:
        return self.shadows.get_shadow(iotshadow.GetShadowRequest(thing_name=self.thing)).result(
            TIMEOUT
        )

    def close(self) -> None:
        self._streams.clear()  # streams end with their client
        stop_mqtt5(self.client)


def rejected(future_call: Any) -> tuple[int, str]:
    with pytest.raises(V2ServiceException) as caught:
        future_call()
    error = caught.value.modeled_error
    assert error is not None, caught.value.message
    return error.code, error.message


def no_message(q: queue.Queue[Any]) -> bool:
    try:
        q.get(timeout=QUIET)
    except queue.Empty:
        return True
    return False


@pytest.fixture
def device(server: Server) -> Iterator[Device]:
    d = Device(server)
    yield d
    d.close()


def test_v2_classic_shadow_lifecycle(device: Device) -> None:
    # A shadow that does not exist: 404.
    assert rejected(device.get) == (404, f"No shadow exists with name: '{device.thing}'")

    # Desired state: accepted (version 1), a delta and a documents message without "previous".
    accepted = device.update(desired={"color": "red", "fan": {"speed": 2}})
    assert accepted.version == 1
    assert accepted.state.desired == {"color": "red", "fan": {"speed": 2}}
    assert isinstance(accepted.metadata.desired["color"]["timestamp"], int)
    delta = device.deltas.get(timeout=TIMEOUT)
    assert (delta.version, delta.state) == (1, {"color": "red", "fan": {"speed": 2}})
    docs = device.documents.get(timeout=TIMEOUT)
    assert docs.previous is None and docs.current.version == 1
    assert docs.current.state.desired == {"color": "red", "fan": {"speed": 2}}

    # Reported matching part of it: documents with previous/current, no delta (the report sent
    # no desired section); the get shows the remaining delta by leaf.
    assert device.update(version=1, reported={"color": "red", "fan": {"speed": 1}}).version == 2
    docs = device.documents.get(timeout=TIMEOUT)
    assert (docs.previous.version, docs.current.version) == (1, 2)
    assert docs.current.state.reported == {"color": "red", "fan": {"speed": 1}}
    assert no_message(device.deltas)
    got = device.get()
    assert got.version == 2 and got.state.delta == {"fan": {"speed": 2}}

    # A stale version: 409 and nothing changes.
    assert rejected(lambda: device.update(version=1, desired={"color": "blue"})) == (
        409,
        "Version conflict",
    )
    assert device.get().version == 2

    # Desired changed again while it differs: a delta with the whole difference.
    device.update(desired={"color": "green"})
    delta = device.deltas.get(timeout=TIMEOUT)
    assert delta.version == 3 and delta.state == {"color": "green", "fan": {"speed": 2}}

    # Reported catches up: no delta; desired/reported equal means the get has no delta.
    device.update(reported={"color": "green", "fan": {"speed": 2}})
    assert no_message(device.deltas)
    assert device.get().state.delta is None

    # null deletes a key, and an object it empties.
    device.update(desired={"fan": {"speed": None}, "color": None})
    got = device.get()
    assert got.state.desired is None and got.version == 5
    assert got.state.reported == {"color": "green", "fan": {"speed": 2}}

    # Delete: accepted with the version, then 404; created again, the version continues.
    deleted = device.shadows.delete_shadow(
        iotshadow.DeleteShadowRequest(thing_name=device.thing)
    ).result(TIMEOUT)
    assert deleted.version == 5
    assert rejected(device.get)[0] == 404
    assert device.update(reported={"x": 1}).version == 6


def test_v2_named_shadows_are_separate(server: Server) -> None:
    d = Device(server, shadow_name="cfg")
    try:
        named = d.shadows.update_named_shadow(
            iotshadow.UpdateNamedShadowRequest(
                thing_name=d.thing,
                shadow_name="cfg",
                state=iotshadow.ShadowState(desired={"mode": "eco"}),
            )
        ).result(TIMEOUT)
        assert named.version == 1
        assert d.deltas.get(timeout=TIMEOUT).state == {"mode": "eco"}
        got = d.shadows.get_named_shadow(
            iotshadow.GetNamedShadowRequest(thing_name=d.thing, shadow_name="cfg")
        ).result(TIMEOUT)
        assert got.state.desired == {"mode": "eco"} and got.state.delta == {"mode": "eco"}
        assert rejected(d.get)[0] == 404  # the classic shadow does not exist
        d.update(desired={"classic": True})
        assert no_message(d.deltas)  # the classic delta is not the named stream's
        deleted = d.shadows.delete_named_shadow(
            iotshadow.DeleteNamedShadowRequest(thing_name=d.thing, shadow_name="cfg")
        ).result(TIMEOUT)
        assert deleted.version == 1
        code, message = rejected(
            lambda: d.shadows.get_named_shadow(
                iotshadow.GetNamedShadowRequest(thing_name=d.thing, shadow_name="cfg")
            ).result(TIMEOUT)
        )
        assert (code, message) == (404, "No shadow exists with name: 'cfg'")
        assert d.get().state.desired == {"classic": True}
    finally:
        d.close()


def test_v2_concurrent_updates_with_one_version_exactly_one_accepted(device: Device) -> None:
    device.update(reported={"n": 0})
    futures = [
        device.shadows.update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=device.thing,
                state=iotshadow.ShadowState(reported={"n": i}),
                version=1,
            )
        )
        for i in range(1, 9)
    ]
    accepted, conflicts = 0, 0
    for f in futures:
        try:
            f.result(TIMEOUT)
            accepted += 1
        except V2ServiceException as exc:
            assert exc.modeled_error is not None
            assert (exc.modeled_error.code, exc.modeled_error.message) == (409, "Version conflict")
            conflicts += 1
    assert (accepted, conflicts) == (1, 7)
    assert device.get().version == 2


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (b"{nope", 400, "Invalid JSON"),
        (b'{"state": 1}', 400, "State node must be an object"),
        (b'{"desired": {}}', 400, "Missing required node: state"),
        (b'{"state": {"desired": 5}}', 400, "Desired node must be an object"),
        (b'{"state": {"delta": {}}}', 400, "State contains an invalid node"),
        (b'{"state": {}, "version": "x"}', 400, "Invalid version"),
        (b'{"state": {}, "clientToken": "' + b"t" * 65 + b'"}', 400, "Invalid clientToken"),
        (
            b'{"state": {"reported": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}',
            400,
            "JSON contains too many levels of nesting; maximum is 6",
        ),
        (
            json.dumps({"state": {"reported": {"big": "x" * 9000}}}).encode(),
            413,
            "The payload exceeds the maximum size allowed",
        ),
        (b"\xff{}", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    ],
)
def test_malformed_and_oversized_updates_are_rejected_and_store_nothing(
    server: Server, payload: bytes, code: int, message: str
) -> None:
    thing, certs = server.new_thing()
    connection = mqtt311_connection(server, thing, certs)
    try:
        replies: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        base = f"$aws/things/{thing}/shadow"
        sub, _ = connection.subscribe(
            f"{base}/#",
            mqtt.QoS.AT_LEAST_ONCE,
            lambda topic, payload, **kw: replies.put((topic, json.loads(payload))),
        )
        sub.result(TIMEOUT)
        pub, _ = connection.publish(f"{base}/update", payload, mqtt.QoS.AT_LEAST_ONCE)
        pub.result(TIMEOUT)
        topic, body = replies.get(timeout=TIMEOUT)
        assert topic == f"{base}/update/rejected"
        assert (body["code"], body["message"]) == (code, message)
        assert isinstance(body["timestamp"], int)
        pub, _ = connection.publish(f"{base}/get", b"{}", mqtt.QoS.AT_LEAST_ONCE)
        topic, body = replies.get(timeout=TIMEOUT)
        assert topic == f"{base}/get/rejected" and body["code"] == 404  # nothing was stored
        assert replies.empty()
    finally:
        connection.disconnect().result(TIMEOUT)


def test_v1_client_on_mqtt311(server: Server) -> None:
    thing, certs = server.new_thing()
    connection = mqtt311_connection(server, thing, certs)
    shadows = iotshadow.IotShadowClient(connection)
    got: queue.Queue[Any] = queue.Queue()
    updated: queue.Queue[Any] = queue.Queue()
    deltas: queue.Queue[Any] = queue.Queue()
    errors: queue.Queue[Any] = queue.Queue()
    qos = mqtt.QoS.AT_LEAST_ONCE
    try:
        for subscribe, request, into in (
            (shadows.subscribe_to_get_shadow_accepted, iotshadow.GetShadowSubscriptionRequest, got),
            (
                shadows.subscribe_to_get_shadow_rejected,
                iotshadow.GetShadowSubscriptionRequest,
                errors,
            ),
            (
                shadows.subscribe_to_update_shadow_accepted,
                iotshadow.UpdateShadowSubscriptionRequest,
                updated,
            ),
            (
                shadows.subscribe_to_update_shadow_rejected,
                iotshadow.UpdateShadowSubscriptionRequest,
                errors,
            ),
            (
                shadows.subscribe_to_shadow_delta_updated_events,
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest,
                deltas,
            ),
        ):
            future, _ = subscribe(request(thing_name=thing), qos, into.put)
            future.result(TIMEOUT)
        shadows.publish_get_shadow(
            iotshadow.GetShadowRequest(thing_name=thing, client_token="g1"), qos
        ).result(TIMEOUT)
        error = errors.get(timeout=TIMEOUT)
        assert (error.code, error.client_token) == (404, "g1")
        shadows.publish_update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=thing,
                state=iotshadow.ShadowState(desired={"led": "on"}),
                client_token="u1",
            ),
            qos,
        ).result(TIMEOUT)
        accepted = updated.get(timeout=TIMEOUT)
        assert (accepted.version, accepted.client_token) == (1, "u1")
        delta = deltas.get(timeout=TIMEOUT)
        assert (delta.state, delta.client_token) == ({"led": "on"}, "u1")
        shadows.publish_update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=thing,
                state=iotshadow.ShadowState(reported={"led": "on"}),
                version=1,
            ),
            qos,
        ).result(TIMEOUT)
        assert updated.get(timeout=TIMEOUT).version == 2
        assert no_message(deltas)
        shadows.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing), qos).result(
            TIMEOUT
        )
        document = got.get(timeout=TIMEOUT)
        assert document.version == 2 and document.state.delta is None
        assert document.state.reported == {"led": "on"}
    finally:
        connection.disconnect().result(TIMEOUT)


def test_another_things_shadow_is_refused(server: Server, device: Device) -> None:
    other = Device(server)
    try:
        other.update(desired={"secret": 1})
        publish = device.client.publish(
            mqtt5.PublishPacket(
                topic=f"$aws/things/{other.thing}/shadow/update",
                payload=b'{"state": {"desired": {"secret": 2}}}',
                qos=mqtt5.QoS.AT_LEAST_ONCE,
            )
        ).result(TIMEOUT)
        assert publish.puback.reason_code == mqtt5.PubackReasonCode.NOT_AUTHORIZED
        assert other.get().state.desired == {"secret": 1}
        subscribed = device.client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(f"$aws/things/{other.thing}/shadow/update/delta")]
            )
        ).result(TIMEOUT)
        assert subscribed.reason_codes[0] == mqtt5.SubackReasonCode.NOT_AUTHORIZED
    finally:
        other.close()
