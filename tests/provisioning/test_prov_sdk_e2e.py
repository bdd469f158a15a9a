"""End to end against a running ``lantern serve`` with the official AWS IoT Device SDK v2:
IotIdentityClient (MQTT 3.1.1) and IotIdentityClientV2 (MQTT 5 request-response) provision a
device both ways, then reconnect as it. Claims are created with the CLI, as an operator would."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from pathlib import Path

import pytest
from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import iotidentity, mqtt5_client_builder, mqtt_connection_builder
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.process import LanternProcess
from support.provisioning_env import Claim

TEMPLATE = "DefaultProvisioningTemplate"
PARAMS = {"SerialNumber": "SN-1", "Manufacturer": "acme", "Name": "pump", "Model": "p1"}
TIMEOUT = 20


def make_csr() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sdk")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def write_device(tmp: Path, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
    cert, key = tmp / f"dev-{uuid.uuid4().hex[:6]}.pem", tmp / f"dev-{uuid.uuid4().hex[:6]}.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    return cert, key


# -- MQTT 3.1.1 -------------------------------------------------------------------------------
def connect311(port: int, cert: Path, key: Path, ca: Path, client_id: str) -> mqtt.Connection:
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(ca),
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
    )
    conn.connect().result(TIMEOUT)
    return conn


def v1_call(subscribe_accepted, subscribe_rejected, publish, request_sub, request_pub):  # type: ignore[no-untyped-def]
    """Subscribe to accepted and rejected (exact topics), publish, wait for one answer."""
    answer: concurrent.futures.Future[object] = concurrent.futures.Future()

    def ok(response: object) -> None:
        if not answer.done():
            answer.set_result(response)

    def bad(error: iotidentity.ErrorResponse) -> None:
        if not answer.done():
            answer.set_exception(
                AssertionError(
                    f"rejected: {error.status_code} {error.error_code} {error.error_message}"
                )
            )

    sub_a, _ = subscribe_accepted(request_sub, mqtt.QoS.AT_LEAST_ONCE, ok)
    sub_r, _ = subscribe_rejected(request_sub, mqtt.QoS.AT_LEAST_ONCE, bad)
    sub_a.result(TIMEOUT)
    sub_r.result(TIMEOUT)
    publish(request_pub, mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
    return answer.result(TIMEOUT)


def v1_register(
    identity: iotidentity.IotIdentityClient, token: str
) -> iotidentity.RegisterThingResponse:
    return v1_call(  # type: ignore[no-any-return]
        identity.subscribe_to_register_thing_accepted,
        identity.subscribe_to_register_thing_rejected,
        identity.publish_register_thing,
        iotidentity.RegisterThingSubscriptionRequest(template_name=TEMPLATE),
        iotidentity.RegisterThingRequest(
            template_name=TEMPLATE, certificate_ownership_token=token, parameters=PARAMS
        ),
    )


def assert_device_connects_311(port: int, ca: Path, cert: Path, key: Path, thing: str) -> None:
    conn = connect311(port, cert, key, ca, thing)
    got: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    sub, _ = conn.subscribe(
        f"{thing}/echo",
        mqtt.QoS.AT_LEAST_ONCE,
        lambda topic, payload, **kw: got.done() or got.set_result(payload),
    )
    sub.result(TIMEOUT)
    conn.publish(f"{thing}/echo", b"hello", mqtt.QoS.AT_LEAST_ONCE)[0].result(TIMEOUT)
    assert got.result(TIMEOUT) == b"hello"
    conn.disconnect().result(TIMEOUT)


def test_v1_identity_client_create_keys_then_register(
    server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    conn = connect311(server.mqtt_port, claim.cert, claim.key, claim.ca, f"prov-{uuid.uuid4()}")
    identity = iotidentity.IotIdentityClient(conn)
    created = v1_call(
        identity.subscribe_to_create_keys_and_certificate_accepted,
        identity.subscribe_to_create_keys_and_certificate_rejected,
        identity.publish_create_keys_and_certificate,
        iotidentity.CreateKeysAndCertificateSubscriptionRequest(),
        iotidentity.CreateKeysAndCertificateRequest(),
    )
    assert len(created.certificate_id) == 64 and "PRIVATE KEY" in created.private_key
    registered = v1_register(identity, created.certificate_ownership_token)
    assert registered.thing_name == f"SN-1-{created.certificate_id[:12]}"
    assert registered.device_configuration == {}
    conn.disconnect().result(TIMEOUT)
    cert, key = write_device(tmp_path, created.certificate_pem, created.private_key)
    assert_device_connects_311(server.mqtt_port, claim.ca, cert, key, registered.thing_name)


def test_v1_identity_client_csr_then_register(
    server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    conn = connect311(server.mqtt_port, claim.cert, claim.key, claim.ca, f"prov-{uuid.uuid4()}")
    identity = iotidentity.IotIdentityClient(conn)
    csr, key_pem = make_csr()
    created = v1_call(
        identity.subscribe_to_create_certificate_from_csr_accepted,
        identity.subscribe_to_create_certificate_from_csr_rejected,
        identity.publish_create_certificate_from_csr,
        iotidentity.CreateCertificateFromCsrSubscriptionRequest(),
        iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr),
    )
    registered = v1_register(identity, created.certificate_ownership_token)
    conn.disconnect().result(TIMEOUT)
    cert, key = write_device(tmp_path, created.certificate_pem, key_pem)
    assert_device_connects_311(server.mqtt_port, claim.ca, cert, key, registered.thing_name)


# -- MQTT 5 request-response ------------------------------------------------------------------
class Mqtt5:
    def __init__(self, port: int, cert: Path, key: Path, ca: Path, client_id: str) -> None:
        self.connected = threading.Event()
        self.failed: list[object] = []
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="localhost",
            port=port,
            cert_filepath=str(cert),
            pri_key_filepath=str(key),
            ca_filepath=str(ca),
            client_id=client_id,
            on_lifecycle_connection_success=lambda event: self.connected.set(),
            on_lifecycle_connection_failure=lambda event: self.failed.append(event),
        )

    def __enter__(self) -> mqtt5.Client:
        self.client.start()
        assert self.connected.wait(TIMEOUT), self.failed
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.stop()


def v2_client(client: mqtt5.Client) -> iotidentity.IotIdentityClientV2:
    options = mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=2,
        max_streaming_subscriptions=2,
        operation_timeout_in_seconds=TIMEOUT,
    )
    return iotidentity.IotIdentityClientV2(client, options)


@pytest.mark.parametrize("path", ["keys", "csr"])
def test_v2_identity_client_provisions_and_reconnects(
    server: LanternProcess, claim: Claim, tmp_path: Path, path: str
) -> None:
    with Mqtt5(server.mqtt_port, claim.cert, claim.key, claim.ca, f"prov-{uuid.uuid4()}") as client:
        identity = v2_client(client)
        if path == "keys":
            created = identity.create_keys_and_certificate(
                iotidentity.CreateKeysAndCertificateRequest()
            ).result(TIMEOUT)
            key_pem = created.private_key
        else:
            csr, key_pem = make_csr()
            created = identity.create_certificate_from_csr(
                iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr)
            ).result(TIMEOUT)
        registered = identity.register_thing(
            iotidentity.RegisterThingRequest(
                template_name=TEMPLATE,
                certificate_ownership_token=created.certificate_ownership_token,
                parameters=PARAMS,
            )
        ).result(TIMEOUT)
        # A rejection surfaces as V2ServiceException with the modeled error.
        with pytest.raises(Exception) as rejected:
            identity.register_thing(
                iotidentity.RegisterThingRequest(
                    template_name=TEMPLATE,
                    certificate_ownership_token=created.certificate_ownership_token,
                    parameters=PARAMS,
                )
            ).result(TIMEOUT)
        error = rejected.value.modeled_error  # type: ignore[attr-defined]
        assert error.status_code == 400 and "already used" in error.error_message
    cert, key = write_device(tmp_path, created.certificate_pem, key_pem)
    with Mqtt5(server.mqtt_port, cert, key, claim.ca, registered.thing_name) as device:
        puback = device.publish(
            mqtt5.PublishPacket(
                topic=f"{registered.thing_name}/status", payload=b"up", qos=mqtt5.QoS.AT_LEAST_ONCE
            )
        ).result(TIMEOUT)
        assert puback.puback.reason_code == mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS or (
            puback.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        )
        suback = device.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[
                    mqtt5.Subscription(topic_filter="$aws/#", qos=mqtt5.QoS.AT_LEAST_ONCE)
                ]
            )
        ).result(TIMEOUT)
        assert suback.reason_codes == [mqtt5.SubackReasonCode.NOT_AUTHORIZED]
