"""The iot-data shadow routes answer boto3 signed with an access key (they kept the admin
token too: tests/shadows)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from awsapi.conftest import Factory, create_key
from support.process import LanternProcess


def test_shadows_with_an_access_key(
    server: LanternProcess, client_for: Factory, admin_key: dict[str, str], iot: Any
) -> None:
    iot.create_thing(thingName="shadowed")
    data = client_for("iot-data", admin_key)
    update = {"state": {"desired": {"temp": 21}}}
    done = data.update_thing_shadow(thingName="shadowed", payload=json.dumps(update).encode())
    assert json.loads(done["payload"].read())["state"]["desired"] == {"temp": 21}
    got = json.loads(data.get_thing_shadow(thingName="shadowed")["payload"].read())
    assert got["state"]["delta"] == {"temp": 21} and got["version"] == 1
    data.update_thing_shadow(thingName="shadowed", shadowName="cfg", payload=b'{"state":{}}')
    named = data.list_named_shadows_for_thing(thingName="shadowed")
    assert named["results"] == ["cfg"]

    reader = client_for("iot-data", create_key(server, "shadow-reader", "readonly"))
    assert json.loads(reader.get_thing_shadow(thingName="shadowed")["payload"].read())
    with pytest.raises(ClientError) as exc:
        reader.delete_thing_shadow(thingName="shadowed")
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    wrong = client_for("iot-data", {**admin_key, "SecretAccessKey": "nope"})
    with pytest.raises(ClientError) as exc:
        wrong.get_thing_shadow(thingName="shadowed")
    assert exc.value.response["Error"]["Code"] == "InvalidSignatureException"

    data.delete_thing_shadow(thingName="shadowed")
    with pytest.raises(ClientError) as exc:
        data.get_thing_shadow(thingName="shadowed")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Unsigned and without the admin token: refused as before.
    assert httpx.get(f"{server.http_url}/things/shadowed/shadow").status_code == 401
