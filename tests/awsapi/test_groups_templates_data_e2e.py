"""Thing groups, provisioning templates, DescribeEndpoint and iot-data (Publish, retained
messages) through boto3 against ``lantern serve``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt5
from botocore.exceptions import ClientError

from awsapi.conftest import TIMEOUT, Factory, sdk_device
from support.process import LanternProcess

TEMPLATE = {
    "Parameters": {"SerialNumber": {"Type": "String"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Fn::Join": ["", ["dev-", {"Ref": "SerialNumber"}]]}},
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                "Status": "Active",
            },
        },
    },
}


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_thing_groups(iot: Any) -> None:
    made = iot.create_thing_group(
        thingGroupName="ward-3", thingGroupProperties={"thingGroupDescription": "third floor"}
    )
    assert made["thingGroupArn"].endswith(":thinggroup/ward-3")
    iot.create_thing_group(
        thingGroupName="ward-3", thingGroupProperties={"thingGroupDescription": "third floor"}
    )
    with pytest.raises(ClientError) as exc:
        iot.create_thing_group(thingGroupName="ward-3")
    assert code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        iot.create_thing_group(thingGroupName="child", parentGroupName="ward-3")
    assert code(exc) == "InvalidRequestException"
    desc = iot.describe_thing_group(thingGroupName="ward-3")
    assert desc["thingGroupProperties"]["thingGroupDescription"] == "third floor"
    names = [g["groupName"] for g in iot.list_thing_groups(namePrefixFilter="ward")["thingGroups"]]
    assert names == ["ward-3"]
    for thing in ("bed-1", "bed-2"):
        iot.create_thing(thingName=thing)
        iot.add_thing_to_thing_group(thingGroupName="ward-3", thingName=thing)
    iot.add_thing_to_thing_group(thingGroupArn=made["thingGroupArn"], thingName="bed-1")
    assert sorted(iot.list_things_in_thing_group(thingGroupName="ward-3")["things"]) == [
        "bed-1",
        "bed-2",
    ]
    iot.remove_thing_from_thing_group(thingGroupName="ward-3", thingName="bed-2")
    assert iot.list_things_in_thing_group(thingGroupName="ward-3")["things"] == ["bed-1"]
    with pytest.raises(ClientError) as exc:
        iot.add_thing_to_thing_group(thingGroupName="ward-3", thingName="no-such-thing")
    assert code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        iot.describe_thing_group(thingGroupName="ward-9")
    assert code(exc) == "ResourceNotFoundException"
    iot.delete_thing_group(thingGroupName="ward-3")
    iot.delete_thing_group(thingGroupName="ward-3")
    with pytest.raises(ClientError):
        iot.describe_thing_group(thingGroupName="ward-3")


def test_provisioning_templates(iot: Any) -> None:
    role = "arn:aws:iam::000000000000:role/provisioning"
    made = iot.create_provisioning_template(
        templateName="Beds",
        templateBody=json.dumps(TEMPLATE),
        provisioningRoleArn=role,
        enabled=True,
        description="bed sensors",
    )
    assert made["templateArn"].endswith(":provisioningtemplate/Beds")
    with pytest.raises(ClientError) as exc:
        iot.create_provisioning_template(
            templateName="Beds", templateBody=json.dumps(TEMPLATE), provisioningRoleArn=role
        )
    assert code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        iot.create_provisioning_template(
            templateName="Broken", templateBody='{"Resources": 1}', provisioningRoleArn=role
        )
    assert code(exc) == "InvalidRequestException"
    desc = iot.describe_provisioning_template(templateName="Beds")
    assert json.loads(desc["templateBody"]) == TEMPLATE and desc["enabled"] is True
    iot.update_provisioning_template(
        templateName="Beds",
        enabled=False,
        preProvisioningHook={"targetArn": "https://hooks.example/check"},
    )
    desc = iot.describe_provisioning_template(templateName="Beds")
    assert desc["enabled"] is False
    assert desc["preProvisioningHook"]["targetArn"] == "https://hooks.example/check"
    names = [t["templateName"] for t in iot.list_provisioning_templates()["templates"]]
    assert "Beds" in names and "DefaultProvisioningTemplate" in names
    iot.delete_provisioning_template(templateName="Beds")
    with pytest.raises(ClientError) as exc:
        iot.describe_provisioning_template(templateName="Beds")
    assert code(exc) == "ResourceNotFoundException"


def test_describe_endpoint(iot: Any, server: LanternProcess) -> None:
    ats = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert ats == f"localhost:{server.mqtt_port}"
    jobs = iot.describe_endpoint(endpointType="iot:Jobs")["endpointAddress"]
    assert jobs == f"localhost:{server.http_port}"
    with pytest.raises(ClientError) as exc:
        iot.describe_endpoint(endpointType="iot:CredentialProvider")
    assert code(exc) == "InvalidRequestException"


def test_iot_data_publish_and_retained(
    server: LanternProcess,
    client_for: Factory,
    admin_key: dict[str, str],
    iot: Any,
    tmp_path: Path,
) -> None:
    data = client_for("iot-data", admin_key)
    thing = "data-sub"
    made = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
    cert, key = tmp_path / "sub.pem", tmp_path / "sub.key"
    cert.write_text(made["certificatePem"])
    key.write_text(made["keyPair"]["PrivateKey"])
    sub = sdk_device(server, thing, cert, key)
    try:
        sub["connected"].result(TIMEOUT)
        client: mqtt5.Client = sub["client"]
        topic = f"{thing}/alerts"
        client.subscribe(
            mqtt5.SubscribePacket([mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)])
        ).result(TIMEOUT)
        data.publish(topic=topic, qos=1, payload=b"fall")
        message = sub["message"].result(TIMEOUT)
        assert message.topic == topic and message.payload == b"fall"
        assert message.qos == mqtt5.QoS.AT_LEAST_ONCE
    finally:
        sub["client"].stop()
        sub["stopped"].result(TIMEOUT)

    data.publish(topic="status/lamp", qos=0, retain=True, payload=b'{"on":true}')
    retained = data.get_retained_message(topic="status/lamp")
    assert retained["payload"] == b'{"on":true}' and retained["qos"] == 0
    listed = data.list_retained_messages()["retainedTopics"]
    assert {"topic": "status/lamp", "payloadSize": 11, "qos": 0} in listed
    data.publish(topic="status/lamp", retain=True, payload=b"")  # empty retained: deleted
    with pytest.raises(ClientError) as exc:
        data.get_retained_message(topic="status/lamp")
    assert code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        data.publish(topic="a/+/b", payload=b"x")
    assert code(exc) == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        data.publish(topic="t", qos=2, payload=b"x")
    assert code(exc) == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        data.publish(topic="$aws/things/x/shadow/update", payload=b"{}")
    assert code(exc) == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        data.publish(topic="big", payload=b"x" * (128 * 1024 + 1))
    assert code(exc) == "RequestEntityTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
