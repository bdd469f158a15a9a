"""The Identity API handlers, called directly (no sockets): CreateKeysAndCertificate,
CreateCertificateFromCsr, RegisterThing, and every refusal; on SQLite and PostgreSQL (the ``env``
fixture runs each test on both)."""

from __future__ import annotations

import json
import re
from typing import Any

import cbor2
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lantern.gateway import HandlerResult, ThingIdentity
from lantern.pki import load_certificate
from lantern.store import registry as reg
from lantern.store.schema.registry import certificates, things
from support.provisioning_env import Env, call

CREATE = "$aws/certificates/create/json"
CSR = "$aws/certificates/create-from-csr/json"
DEFAULT = "DefaultProvisioningTemplate"
REGISTER = f"$aws/provisioning-templates/{DEFAULT}/provision/json"
PARAMS = {
    "SerialNumber": "12345",
    "Manufacturer": "my-company",
    "Name": "my device",
    "Model": "prototype",
}


def only_reply(result: HandlerResult) -> tuple[str, dict[str, Any]]:
    assert len(result.replies) == 1
    reply = result.replies[0]
    assert reply.to == "requester"  # never broadcast (docs/device-topics.md)
    return reply.topic, json.loads(reply.payload)


def assert_rejected(result: HandlerResult, topic: str, status: int, code: str, text: str) -> None:
    got_topic, body = only_reply(result)
    assert got_topic == f"{topic}/rejected"
    assert set(body) == {"statusCode", "errorCode", "errorMessage"}
    assert body["statusCode"] == status and body["errorCode"] == code
    assert text in body["errorMessage"], body["errorMessage"]


async def create_keys(env: Env, identity: object = None) -> dict[str, Any]:
    result = await call(
        env.service.create_keys_and_certificate, CREATE, b"{}", identity or env.claim, fmt="json"
    )
    topic, body = only_reply(result)
    assert topic == f"{CREATE}/accepted", body
    return body


async def register(
    env: Env,
    token: str,
    params: dict[str, str] | None = None,
    template: str = DEFAULT,
    identity: object = None,
) -> HandlerResult:
    payload = json.dumps(
        {"certificateOwnershipToken": token, "parameters": PARAMS if params is None else params}
    ).encode()
    return await call(
        env.service.register_thing,
        f"$aws/provisioning-templates/{template}/provision/json",
        payload,
        identity or env.claim,
        template=template,
        fmt="json",
    )


async def counts(env: Env) -> tuple[int, int]:
    async with env.db.connect() as conn:
        n_certs = (
            await conn.execute(sa.select(sa.func.count()).select_from(certificates))
        ).scalar_one()
        n_things = (await conn.execute(sa.select(sa.func.count()).select_from(things))).scalar_one()
    return n_certs, n_things


def make_csr(key: Any) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def test_create_keys_and_certificate_returns_a_pending_certificate_and_its_key(
    env: Env,
) -> None:
    body = await create_keys(env)
    assert set(body) == {
        "certificateId",
        "certificatePem",
        "privateKey",
        "certificateOwnershipToken",
    }
    assert re.fullmatch(r"[0-9a-f]{64}", body["certificateId"])
    cert = load_certificate(body["certificatePem"])
    assert env.ca.verify_issued(cert)
    key = serialization.load_pem_private_key(body["privateKey"].encode(), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert len(body["certificateOwnershipToken"]) >= 40
    async with env.db.connect() as conn:
        record = await reg.get_certificate(conn, body["certificateId"])
    assert record is not None and record.status == "PENDING_ACTIVATION" and record.kind == "device"
    assert "PRIVATE KEY" not in record.pem  # the key is never stored


async def test_create_keys_accepts_an_empty_payload_and_cbor(env: Env) -> None:
    result = await call(env.service.create_keys_and_certificate, CREATE, b"", env.claim, fmt="json")
    assert only_reply(result)[0] == f"{CREATE}/accepted"
    topic = "$aws/certificates/create/cbor"
    result = await call(
        env.service.create_keys_and_certificate, topic, cbor2.dumps({}), env.claim, fmt="cbor"
    )
    reply = result.replies[0]
    assert reply.topic == f"{topic}/accepted"
    body = cbor2.loads(reply.payload)
    assert body["certificateId"] and body["privateKey"].startswith("-----BEGIN PRIVATE KEY")


async def test_default_key_type_is_rsa_2048(env: Env) -> None:
    from lantern.provisioning.service import ProvisioningService
    from lantern.settings.provisioning import ProvisioningSettings

    service = ProvisioningService(env.db, env.ca, ProvisioningSettings(), clock=env.clock)
    try:
        result = await call(
            service.create_keys_and_certificate, CREATE, b"{}", env.claim, fmt="json"
        )
    finally:
        await service.close()
    cert = load_certificate(only_reply(result)[1]["certificatePem"])
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048


async def test_malformed_payload_is_rejected_and_nothing_is_created(env: Env) -> None:
    before = await counts(env)
    result = await call(
        env.service.create_keys_and_certificate, CREATE, b"[1,2", env.claim, fmt="json"
    )
    assert_rejected(result, CREATE, 400, "InvalidPayload", "not valid JSON")
    assert await counts(env) == before


async def test_create_from_csr_signs_the_devices_key_without_returning_one(env: Env) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps({"certificateSigningRequest": make_csr(key)}).encode()
    result = await call(
        env.service.create_certificate_from_csr, CSR, payload, env.claim, fmt="json"
    )
    topic, body = only_reply(result)
    assert topic == f"{CSR}/accepted"
    assert set(body) == {"certificateId", "certificatePem", "certificateOwnershipToken"}
    cert = load_certificate(body["certificatePem"])
    assert cert.public_key() == key.public_key()


async def test_malformed_csr_is_rejected(env: Env) -> None:
    before = await counts(env)
    for bad in (
        {"certificateSigningRequest": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"},
        {"certificateSigningRequest": ""},
        {},
    ):
        result = await call(
            env.service.create_certificate_from_csr,
            CSR,
            json.dumps(bad).encode(),
            env.claim,
            fmt="json",
        )
        _, body = only_reply(result)
        assert result.replies[0].topic == f"{CSR}/rejected"
        assert body["statusCode"] == 400
    assert await counts(env) == before


async def test_csr_with_a_weak_key_is_rejected(env: Env) -> None:
    before = await counts(env)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    payload = json.dumps({"certificateSigningRequest": make_csr(weak)}).encode()
    result = await call(
        env.service.create_certificate_from_csr, CSR, payload, env.claim, fmt="json"
    )
    assert_rejected(result, CSR, 400, "InvalidCsr", "too weak")
    assert await counts(env) == before


async def test_register_thing_creates_the_thing_and_activates_the_certificate(env: Env) -> None:
    created = await create_keys(env)
    result = await register(env, created["certificateOwnershipToken"])
    topic, body = only_reply(result)
    assert topic == f"{REGISTER}/accepted"
    assert body == {
        "deviceConfiguration": {},
        "thingName": f"12345-{created['certificateId'][:12]}",
    }
    async with env.db.connect() as conn:
        thing = await reg.get_thing(conn, body["thingName"])
        cert = await reg.get_certificate(conn, created["certificateId"])
    assert thing is not None and thing.project == "default" and thing.template_name == DEFAULT
    assert (thing.serial_number, thing.manufacturer, thing.device_name, thing.model) == (
        "12345",
        "my-company",
        "my device",
        "prototype",
    )
    assert cert is not None and cert.status == "ACTIVE" and cert.thing_name == body["thingName"]


async def test_each_certificate_gets_its_own_thing_even_with_the_same_serial(env: Env) -> None:
    names = set()
    for _ in range(2):
        created = await create_keys(env)
        names.add(
            only_reply(await register(env, created["certificateOwnershipToken"]))[1]["thingName"]
        )
    assert len(names) == 2


async def test_ownership_token_refusals(env: Env) -> None:
    created = await create_keys(env)
    token = created["certificateOwnershipToken"]
    other_claim = await env.new_claim()
    before = await counts(env)
    cases = [
        ("", "cannot be empty"),
        ("x" * 64, "unknown"),
        (token[:-2] + "AA", "unknown"),
    ]
    for bad, text in cases:
        assert_rejected(
            await register(env, bad), REGISTER, 400, "InvalidCertificateOwnershipToken", text
        )
    # Foreign: a token created through another claim certificate.
    assert_rejected(
        await register(env, token, identity=other_claim),
        REGISTER,
        400,
        "InvalidCertificateOwnershipToken",
        "another claim",
    )
    assert await counts(env) == before
    async with env.db.connect() as conn:
        assert (
            await reg.get_certificate(conn, created["certificateId"])
        ).status == "PENDING_ACTIVATION"  # type: ignore[union-attr]
    # Reused: works once, then is refused.
    assert only_reply(await register(env, token))[0] == f"{REGISTER}/accepted"
    after_first = await counts(env)
    assert_rejected(
        await register(env, token),
        REGISTER,
        400,
        "InvalidCertificateOwnershipToken",
        "already used",
    )
    assert await counts(env) == after_first


async def test_expired_token_is_refused_and_the_certificate_swept(env: Env) -> None:
    created = await create_keys(env)
    kept = await create_keys(env)
    assert only_reply(await register(env, kept["certificateOwnershipToken"]))[0].endswith(
        "accepted"
    )
    env.clock.now += 3600
    assert_rejected(
        await register(env, created["certificateOwnershipToken"]),
        REGISTER,
        400,
        "InvalidCertificateOwnershipToken",
        "expired",
    )
    assert await env.service.sweep() == 1
    async with env.db.connect() as conn:
        assert await reg.get_certificate(conn, created["certificateId"]) is None
        assert (await reg.get_certificate(conn, kept["certificateId"])) is not None
    assert await env.service.sweep() == 0


async def test_sweep_keeps_certificates_whose_token_is_still_valid(env: Env) -> None:
    created = await create_keys(env)
    env.clock.now += 3599
    assert await env.service.sweep() == 0
    async with env.db.connect() as conn:
        assert await reg.get_certificate(conn, created["certificateId"]) is not None


async def test_unknown_disabled_and_not_allowed_templates(env: Env) -> None:
    from lantern.provisioning.admin import TemplateSpec, create_template, update_template

    body = {
        "Parameters": {"SerialNumber": {"Type": "String"}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "SerialNumber"}},
            }
        },
    }
    await create_template(env.db, "Other", TemplateSpec(body=body))
    token = (await create_keys(env))["certificateOwnershipToken"]
    before = await counts(env)
    topic = "$aws/provisioning-templates/Nope/provision/json"
    assert_rejected(
        await register(env, token, template="Nope"),
        topic,
        404,
        "ResourceNotFound",
        "Nope does not exist",
    )
    topic = "$aws/provisioning-templates/Other/provision/json"
    assert_rejected(
        await register(env, token, template="Other"),
        topic,
        403,
        "AccessDenied",
        "may not use template Other",
    )
    await update_template(env.db, DEFAULT, TemplateSpec(body=None, enabled=False))
    assert_rejected(await register(env, token), REGISTER, 400, "InvalidRequest", "disabled")
    assert await counts(env) == before


async def test_missing_and_invalid_parameters(env: Env) -> None:
    token = (await create_keys(env))["certificateOwnershipToken"]
    before = await counts(env)
    assert_rejected(
        await register(env, token, params={"Manufacturer": "m"}),
        REGISTER,
        400,
        "InvalidParameters",
        "'SerialNumber' is missing",
    )
    assert_rejected(
        await register(env, token, params={**PARAMS, "SerialNumber": "a b/c"}),
        REGISTER,
        400,
        "InvalidParameters",
        "does not match",
    )
    payload = json.dumps({"certificateOwnershipToken": token, "parameters": {"a": 1}}).encode()
    result = await call(
        env.service.register_thing, REGISTER, payload, env.claim, template=DEFAULT, fmt="json"
    )
    assert_rejected(result, REGISTER, 400, "InvalidParameters", "string values")
    assert await counts(env) == before
    # The token was not consumed by the failures.
    assert only_reply(await register(env, token))[0].endswith("/accepted")


async def test_a_custom_template_with_defaults_attributes_configuration_and_policy(
    env: Env,
) -> None:
    from lantern.provisioning.admin import TemplateSpec, create_template
    from lantern.store.registry import access as acc

    body = {
        "Parameters": {
            "SerialNumber": {"Type": "String"},
            "Site": {"Type": "String", "Default": "lab"},
        },
        "Mappings": {"Sites": {"lab": {"Region": "eu"}}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {
                        "Fn::Join": ["_", ["sensor", {"Ref": "Site"}, {"Ref": "SerialNumber"}]]
                    },
                    "AttributePayload": {
                        "site": {"Ref": "Site"},
                        "region": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Region"]},
                    },
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {
                    "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                    "Status": "Active",
                },
            },
            "policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyDocument": json.dumps(
                        {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": "iot:Publish",
                                    "Resource": "topic/telemetry/${iot:Connection.Thing.ThingName}",
                                }
                            ],
                        }
                    )
                },
            },
        },
        "DeviceConfiguration": {
            "greeting": {"Fn::Sub": "hello ${SerialNumber} at ${Site}"},
            "first": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
        },
    }
    await create_template(env.db, "Sensors", TemplateSpec(body=body))
    claim = await env.new_claim("Sensors")
    token = (await create_keys(env, claim))["certificateOwnershipToken"]
    result = await register(
        env, token, params={"SerialNumber": "42"}, template="Sensors", identity=claim
    )
    topic, answer = only_reply(result)
    assert topic.endswith("/accepted"), answer
    assert answer == {
        "thingName": "sensor_lab_42",
        "deviceConfiguration": {"greeting": "hello 42 at lab", "first": "a"},
    }
    async with env.db.connect() as conn:
        thing = await reg.get_thing(conn, "sensor_lab_42")
        cert = (await reg.list_certificates(conn, thing_name="sensor_lab_42"))[0]
        names = await acc.certificate_policy_names(conn, cert.id)
    assert thing is not None and thing.attributes == {"site": "lab", "region": "eu"}
    assert names == ["Sensors-policy"]


async def test_pre_provisioning_hook_allows_with_overrides(env: Env) -> None:
    from lantern.provisioning.admin import TemplateSpec, update_template
    from support.hook_server import HookServer

    async with HookServer(mode="allow", overrides={"SerialNumber": "OVR1"}) as hook:
        await update_template(env.db, DEFAULT, TemplateSpec(body=None, hook_url=hook.url))
        created = await create_keys(env)
        topic, body = only_reply(await register(env, created["certificateOwnershipToken"]))
    assert topic.endswith("/accepted")
    assert body["thingName"].startswith("OVR1-")
    sent = hook.received[0]
    assert set(sent) == {
        "claimCertificateId",
        "certificateId",
        "certificatePem",
        "templateArn",
        "clientId",
        "parameters",
    }
    assert sent["certificateId"] == created["certificateId"]
    assert sent["claimCertificateId"] == env.claim.certificate_id
    assert sent["parameters"] == PARAMS and sent["clientId"] == "dev-client"
    assert sent["templateArn"].endswith(f":provisioningtemplate/{DEFAULT}")


async def test_pre_provisioning_hook_denial_error_garbage_and_timeout(env: Env) -> None:
    from lantern.provisioning.admin import TemplateSpec, update_template
    from support.hook_server import HookServer

    for mode, text in (
        ("deny", "denied provisioning"),
        ("error", "HTTP 500"),
        ("garbage", "other than JSON"),
        ("hang", "did not answer within 0.5 s"),
    ):
        async with HookServer(mode=mode) as hook:
            await update_template(env.db, DEFAULT, TemplateSpec(body=None, hook_url=hook.url))
            created = await create_keys(env)
            before = await counts(env)
            result = await register(env, created["certificateOwnershipToken"])
        assert_rejected(result, REGISTER, 403, "AccessDenied", text)
        assert await counts(env) == before
    # Unreachable hook.
    await update_template(env.db, DEFAULT, TemplateSpec(body=None, hook_url="http://127.0.0.1:9/x"))
    created = await create_keys(env)
    assert_rejected(
        await register(env, created["certificateOwnershipToken"]),
        REGISTER,
        403,
        "AccessDenied",
        "could not be reached",
    )


async def test_revoked_claim_and_device_identities_cannot_provision(env: Env) -> None:
    from lantern.provisioning.admin import revoke_claim

    device = ThingIdentity(certificate_id="0" * 64, thing_name="t", project="default")
    result = await call(env.service.create_keys_and_certificate, CREATE, b"{}", device, fmt="json")
    assert_rejected(result, CREATE, 403, "AccessDenied", "only a claim certificate")
    await revoke_claim(env.db, env.claim.claim_id)
    before = await counts(env)
    result = await call(
        env.service.create_keys_and_certificate, CREATE, b"{}", env.claim, fmt="json"
    )
    assert_rejected(result, CREATE, 403, "AccessDenied", "revoked")
    assert await counts(env) == before


async def test_claim_device_limit(env: Env) -> None:
    claim = await env.new_claim(limit=1)
    first = await create_keys(env, claim)
    second = await create_keys(env, claim)
    assert only_reply(await register(env, first["certificateOwnershipToken"], identity=claim))[
        0
    ].endswith("accepted")
    assert_rejected(
        await register(env, second["certificateOwnershipToken"], identity=claim),
        REGISTER,
        403,
        "LimitExceeded",
        "limit of 1",
    )


async def test_unknown_format_gets_no_reply(env: Env) -> None:
    result = await call(
        env.service.create_keys_and_certificate,
        "$aws/certificates/create/xml",
        b"{}",
        env.claim,
        fmt="xml",
    )
    assert result.replies == () and result.puback == 0x90
