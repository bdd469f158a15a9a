"""The manual-registration flow of AWS IoT, driven by boto3 against ``lantern serve``, with a
device on the AWS IoT Device SDK: CreateKeysAndCertificate, CreateThing, AttachThingPrincipal,
CreatePolicy + AttachPolicy, the device connects with that certificate and publishes; then
UpdateCertificate REVOKED drops it and it cannot connect again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt5

from awsapi.conftest import TIMEOUT
from awsapi.conftest import sdk_device as device
from support.process import LanternProcess


def test_manual_registration_then_revocation(
    server: LanternProcess, iot: Any, tmp_path: Path
) -> None:
    thing = "reg-device-1"
    made = iot.create_keys_and_certificate(setAsActive=True)
    cert, key = tmp_path / "device.pem", tmp_path / "device.key"
    cert.write_text(made["certificatePem"])
    key.write_text(made["keyPair"]["PrivateKey"])
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": "topic/telemetry/${iot:Connection.Thing.ThingName}",
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": "topicfilter/telemetry/${iot:Connection.Thing.ThingName}",
            },
        ],
    }
    iot.create_policy(policyName="telemetry", policyDocument=json.dumps(policy))
    iot.attach_policy(policyName="telemetry", target=made["certificateArn"])

    dev = device(server, thing, cert, key)
    try:
        dev["connected"].result(TIMEOUT)
        client: mqtt5.Client = dev["client"]
        topic = f"telemetry/{thing}"
        suback = client.subscribe(
            mqtt5.SubscribePacket([mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)])
        ).result(TIMEOUT)
        assert suback.reason_codes[0] == mqtt5.SubackReasonCode.GRANTED_QOS_1
        published = client.publish(
            mqtt5.PublishPacket(topic=topic, payload=b"21.5", qos=mqtt5.QoS.AT_LEAST_ONCE)
        ).result(TIMEOUT)
        assert published.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        assert dev["message"].result(TIMEOUT).payload == b"21.5"
        # A topic its policy does not allow is refused.
        refused = client.publish(
            mqtt5.PublishPacket(topic="telemetry/other", payload=b"x", qos=mqtt5.QoS.AT_LEAST_ONCE)
        ).result(TIMEOUT)
        assert refused.puback.reason_code == mqtt5.PubackReasonCode.NOT_AUTHORIZED

        iot.update_certificate(certificateId=made["certificateId"], newStatus="REVOKED")
        dropped = dev["disconnected"].result(TIMEOUT)
        assert dropped.disconnect_packet is not None
        assert (
            dropped.disconnect_packet.reason_code
            == mqtt5.DisconnectReasonCode.ADMINISTRATIVE_ACTION
        )
    finally:
        dev["client"].stop()
        dev["stopped"].result(TIMEOUT)

    again = device(server, thing, cert, key)
    try:
        failure = again["failed"].result(TIMEOUT)
        assert failure.connack_packet is not None
        assert failure.connack_packet.reason_code == mqtt5.ConnectReasonCode.NOT_AUTHORIZED
    finally:
        again["client"].stop()
        again["stopped"].result(TIMEOUT)
    with pytest.raises(Exception, match="CertificateStateException"):
        iot.update_certificate(certificateId=made["certificateId"], newStatus="ACTIVE")
