"""The iot-data shadow routes and ``lantern shadows`` against ``lantern serve``: botocore's REST
shapes, AWS's errors, admin authentication, and changes that reach MQTT subscribers exactly as
MQTT updates do. One test drives them with boto3's ``iot-data`` client."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from awscrt import mqtt
from botocore.config import Config
from botocore.exceptions import ClientError

from shadows.server import TIMEOUT, Server, mqtt311_connection, serving
from shadows.test_e2e import Device, no_message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("shadows-http")) as s:
        yield s


@pytest.fixture
def device(server: Server) -> Iterator[Device]:
    d = Device(server)
    yield d
    d.close()


def error_of(answer: Any) -> tuple[int, str, str]:
    """Status, exception name and message, read as AWS's REST-JSON clients read them."""
    return answer.status_code, answer.headers["x-amzn-ErrorType"], answer.json()["message"]


def test_http_update_reaches_the_device_over_mqtt(server: Server, device: Device) -> None:
    with server.rest() as rest:
        path = f"/things/{device.thing}/shadow"
        missing = rest.get(path)
        assert error_of(missing) == (
            404,
            "ResourceNotFoundException",
            f"No shadow exists with name: '{device.thing}'",
        )
        answer = rest.post(path, json={"state": {"desired": {"temp": 21}}, "clientToken": "web"})
        assert answer.status_code == 200, answer.text
        accepted = answer.json()
        assert accepted["version"] == 1 and accepted["clientToken"] == "web"
        assert accepted["state"] == {"desired": {"temp": 21}}
        assert accepted["metadata"]["desired"]["temp"]["timestamp"] == accepted["timestamp"]
        delta = device.deltas.get(timeout=TIMEOUT)
        assert (delta.version, delta.state, delta.client_token) == (1, {"temp": 21}, "web")
        docs = device.documents.get(timeout=TIMEOUT)
        assert docs.current.version == 1 and docs.previous is None

        # The device reports over MQTT; HTTP sees it, without a delta left.
        device.update(reported={"temp": 21})
        document = rest.get(path).json()
        assert document["version"] == 2
        assert document["state"] == {"desired": {"temp": 21}, "reported": {"temp": 21}}
        assert set(document["metadata"]) == {"desired", "reported"}

        conflict = rest.post(path, json={"state": {"desired": {"temp": 5}}, "version": 1})
        assert error_of(conflict) == (409, "ConflictException", "Version conflict")
        too_big = rest.post(path, json={"state": {"desired": {"t": "x" * 9000}}})
        assert error_of(too_big)[:2] == (413, "RequestEntityTooLargeException")
        bad = rest.post(path, content=b"{nope")
        assert error_of(bad) == (400, "InvalidRequestException", "Invalid JSON")
        assert rest.get(path).json()["version"] == 2  # none of them stored anything

        deleted = rest.delete(path)
        assert deleted.status_code == 200 and deleted.json()["version"] == 2
        assert error_of(rest.delete(path))[0] == 404
        assert no_message(device.deltas)


def test_http_delete_is_broadcast_on_mqtt(server: Server) -> None:
    thing, certs = server.new_thing()
    connection = mqtt311_connection(server, thing, certs)
    heard: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    try:
        subscribed, _ = connection.subscribe(
            f"$aws/things/{thing}/shadow/#",
            mqtt.QoS.AT_LEAST_ONCE,
            lambda topic, payload, **_: heard.put((topic, json.loads(payload))),
        )
        subscribed.result(TIMEOUT)
        with server.rest() as rest:
            path = f"/things/{thing}/shadow"
            assert rest.post(path, json={"state": {"reported": {"a": 1}}}).status_code == 200
            topic, _body = heard.get(timeout=TIMEOUT)
            assert topic == f"$aws/things/{thing}/shadow/update/documents"
            assert rest.request("DELETE", path, json={"clientToken": "bye"}).status_code == 200
        topic, body = heard.get(timeout=TIMEOUT)
        assert topic == f"$aws/things/{thing}/shadow/delete/accepted"
        assert (body["version"], body["clientToken"]) == (1, "bye")
    finally:
        connection.disconnect().result(TIMEOUT)


def test_named_shadows_listed_in_pages(server: Server, device: Device) -> None:
    with server.rest() as rest:
        for name in ("b", "a", "c", "d"):
            answer = rest.post(
                f"/things/{device.thing}/shadow",
                params={"name": name},
                json={"state": {"reported": {"n": name}}},
            )
            assert answer.status_code == 200, answer.text
        rest.post(f"/things/{device.thing}/shadow", json={"state": {"reported": {"classic": 1}}})
        path = f"/api/things/shadow/ListNamedShadowsForThing/{device.thing}"
        first = rest.get(path, params={"pageSize": 3}).json()
        assert first["results"] == ["a", "b", "c"] and first["nextToken"]
        second = rest.get(path, params={"pageSize": 3, "nextToken": first["nextToken"]}).json()
        assert second["results"] == ["d"] and second["nextToken"] is None
        assert isinstance(second["timestamp"], int)
        named = rest.get(f"/things/{device.thing}/shadow", params={"name": "c"}).json()
        assert named["state"]["reported"] == {"n": "c"}
        assert error_of(rest.get("/api/things/shadow/ListNamedShadowsForThing/nobody"))[:2] == (
            404,
            "ResourceNotFoundException",
        )
        assert (
            error_of(rest.get(f"/things/{device.thing}/shadow", params={"name": "bad name"}))[0]
            == 400
        )
        assert error_of(rest.get(path, params={"pageSize": 0}))[0] == 400


def test_admin_token_is_required(server: Server) -> None:
    with server.rest(token="wrong") as rest:
        answer = rest.get("/things/anything/shadow")
        assert error_of(answer)[:2] == (401, "UnauthorizedException")
        assert rest.post("/things/anything/shadow", json={"state": {}}).status_code == 401


def test_unknown_thing_is_404_thing_not_found(server: Server) -> None:
    with server.rest() as rest:
        answer = rest.post("/things/nobody/shadow", json={"state": {"desired": {"a": 1}}})
        assert error_of(answer) == (404, "ResourceNotFoundException", "Thing not found")


def test_concurrent_http_updates_with_one_version_exactly_one_accepted(
    server: Server, device: Device
) -> None:
    path = f"/things/{device.thing}/shadow"
    with server.rest() as rest:
        assert rest.post(path, json={"state": {"reported": {"n": 0}}}).status_code == 200

        def attempt(i: int) -> int:
            with server.rest() as own:
                body = {"state": {"reported": {"n": i}}, "version": 1}
                return own.post(path, json=body).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(attempt, range(1, 25)))
        assert sorted(statuses) == [200] + [409] * 23
        assert rest.get(path).json()["version"] == 2


def test_cli(server: Server, device: Device) -> None:
    out = server.cli("shadows", "update", device.thing, '{"state": {"desired": {"mode": "auto"}}}')
    assert json.loads(out.stdout)["version"] == 1
    assert device.deltas.get(timeout=TIMEOUT).state == {"mode": "auto"}
    named = server.cli(
        "shadows", "update", device.thing, "--name", "cfg", '{"state": {"reported": {"v": 1}}}'
    )
    assert json.loads(named.stdout)["version"] == 1
    got = json.loads(server.cli("shadows", "get", device.thing).stdout)
    assert got["state"]["delta"] == {"mode": "auto"}
    listed = json.loads(server.cli("shadows", "list", device.thing).stdout)
    assert listed["results"] == ["cfg"]
    assert (
        json.loads(server.cli("shadows", "delete", device.thing, "--name", "cfg").stdout)["version"]
        == 1
    )
    failed = server.cli("shadows", "get", device.thing, "--name", "cfg", check=False)
    assert failed.returncode == 1
    assert "404 ResourceNotFoundException: No shadow exists with name: 'cfg'" in failed.stderr
    request = server.root / "request.json"
    request.write_text('{"state": {"reported": {"mode": "auto"}}}')
    from_file = json.loads(server.cli("shadows", "update", device.thing, f"@{request}").stdout)
    assert from_file["state"] == {"reported": {"mode": "auto"}}
    assert (
        json.loads(server.cli("shadows", "get", device.thing).stdout)["state"].get("delta") is None
    )
    invalid = server.cli("shadows", "update", device.thing, "{nope", check=False)
    assert invalid.returncode == 1 and "400 InvalidRequestException: Invalid JSON" in invalid.stderr
    stale = server.cli(
        "shadows", "update", device.thing, '{"state": {}, "version": 9}', check=False
    )
    assert stale.returncode == 1 and "409 ConflictException: Version conflict" in stale.stderr


def test_boto3_iot_data_client(server: Server, device: Device) -> None:
    client = boto3.client(
        "iot-data",
        endpoint_url=server.proc.http_url,
        region_name="us-east-1",
        aws_access_key_id="lantern",
        aws_secret_access_key="unused",
        config=Config(retries={"max_attempts": 1}),
    )
    token = server.admin_token()

    def bearer(request: Any, **_: Any) -> None:
        request.headers["Authorization"] = f"Bearer {token}"  # replaces the SigV4 signature

    client.meta.events.register("before-send.iot-data", bearer)
    updated = client.update_thing_shadow(
        thingName=device.thing,
        payload=json.dumps({"state": {"desired": {"speed": 3}}}).encode(),
    )
    assert json.loads(updated["payload"].read())["version"] == 1
    assert device.deltas.get(timeout=TIMEOUT).state == {"speed": 3}
    client.update_thing_shadow(
        thingName=device.thing, shadowName="extra", payload=b'{"state": {"reported": {"x": 1}}}'
    )
    document = json.loads(client.get_thing_shadow(thingName=device.thing)["payload"].read())
    assert document["state"]["delta"] == {"speed": 3}
    listed = client.list_named_shadows_for_thing(thingName=device.thing)
    assert listed["results"] == ["extra"]
    deleted = client.delete_thing_shadow(thingName=device.thing, shadowName="extra")
    assert json.loads(deleted["payload"].read())["version"] == 1
    with pytest.raises(ClientError) as caught:
        client.get_thing_shadow(thingName=device.thing, shadowName="extra")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "extra" in caught.value.response["Error"]["Message"]


def test_deleting_the_thing_deletes_its_shadows(server: Server) -> None:
    thing, _certs = server.new_thing()
    with server.rest() as rest:
        path = f"/things/{thing}/shadow"
        assert rest.post(path, json={"state": {"reported": {"a": 1}}}).status_code == 200
        named = rest.post(path, params={"name": "n"}, json={"state": {"reported": {"a": 1}}})
        assert named.status_code == 200
        assert rest.delete(f"/v1/things/{thing}").status_code in (200, 204)
        assert error_of(rest.get(path)) == (404, "ResourceNotFoundException", "Thing not found")
        listed = rest.get(f"/api/things/shadow/ListNamedShadowsForThing/{thing}")
        assert error_of(listed)[0] == 404
