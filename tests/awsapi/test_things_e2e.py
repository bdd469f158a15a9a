"""Things, certificates and policies through boto3's ``iot`` client against ``lantern serve``:
the shapes boto3 parses, the error codes it raises, and the access-key refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from awsapi.conftest import REGION, Factory, cli, create_key
from support.process import LanternProcess

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/x/*"}],
}


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_things(iot: Any, server: LanternProcess, admin_key: dict[str, str]) -> None:
    made = iot.create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "a1"}})
    assert made["thingArn"] == f"arn:aws:iot:{REGION}:000000000000:thing/lamp-1"
    again = iot.create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "a1"}})
    assert again["thingId"] == made["thingId"]
    with pytest.raises(ClientError) as exc:
        iot.create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "b"}})
    assert code(exc) == "ResourceAlreadyExistsException"
    iot.create_thing(thingName="lamp-2", attributePayload={"attributes": {"room": "b7"}})
    described = iot.describe_thing(thingName="lamp-1")
    assert described["attributes"] == {"room": "a1"} and described["defaultClientId"] == "lamp-1"
    iot.update_thing(
        thingName="lamp-1", attributePayload={"attributes": {"floor": "2"}, "merge": True}
    )
    after = iot.describe_thing(thingName="lamp-1")
    assert after["attributes"] == {"room": "a1", "floor": "2"} and after["version"] == 2
    by_room = iot.list_things(attributeName="room", attributeValue="b7")["things"]
    assert [t["thingName"] for t in by_room] == ["lamp-2"]
    prefixed = iot.list_things(
        attributeName="room", attributeValue="a", usePrefixAttributeValue=True
    )
    assert [t["thingName"] for t in prefixed["things"]] == ["lamp-1"]
    first = iot.list_things(maxResults=1)
    assert len(first["things"]) == 1 and first["nextToken"]
    names = [
        t["thingName"]
        for t in iot.get_paginator("list_things")
        .paginate(PaginationConfig={"PageSize": 1})
        .build_full_result()["things"]
    ]
    assert {"lamp-1", "lamp-2"} <= set(names)
    with pytest.raises(ClientError) as exc:
        iot.describe_thing(thingName="nope")
    assert code(exc) == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        iot.update_thing(thingName="lamp-1", expectedVersion=1)
    assert code(exc) == "VersionConflictException"
    iot.update_thing(thingName="lamp-1", expectedVersion=2, attributePayload={"attributes": {}})
    assert iot.describe_thing(thingName="lamp-1")["version"] == 3
    with pytest.raises(ClientError) as exc:
        iot.create_thing(thingName="bad name!")
    assert code(exc) == "InvalidRequestException"
    iot.delete_thing(thingName="lamp-2")
    iot.delete_thing(thingName="lamp-2")  # gone already: succeeds, as AWS
    actor = f"access-key:{admin_key['AccessKeyId']}"
    audit = cli(server, "audit", "list", "--actor", actor, "--action", "thing.", "--json")
    assert audit.returncode == 0, audit.stderr
    done = {(e["action"], e["target"]) for e in json.loads(audit.stdout)}
    assert {
        ("thing.create", "lamp-1"),
        ("thing.update", "lamp-1"),
        ("thing.delete", "lamp-2"),
    } <= done
    with pytest.raises(ClientError):
        iot.describe_thing(thingName="lamp-2")


def test_certificates_and_principals(iot: Any) -> None:
    iot.create_thing(thingName="meter-1")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    assert "BEGIN CERTIFICATE" in cert["certificatePem"]
    assert "PRIVATE KEY" in cert["keyPair"]["PrivateKey"]
    arn, cid = cert["certificateArn"], cert["certificateId"]
    assert arn.endswith(f":cert/{cid}")
    desc = iot.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["certificatePem"] == cert["certificatePem"]
    assert desc["validity"]["notAfter"] > desc["validity"]["notBefore"]
    listed = [c["certificateId"] for c in iot.list_certificates()["certificates"]]
    assert cid in listed
    iot.attach_thing_principal(thingName="meter-1", principal=arn)
    assert iot.list_thing_principals(thingName="meter-1")["principals"] == [arn]
    assert iot.list_principal_things(principal=arn)["things"] == ["meter-1"]
    with pytest.raises(ClientError) as exc:
        iot.delete_thing(thingName="meter-1")
    assert code(exc) == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        iot.delete_certificate(certificateId=cid)
    assert code(exc) == "CertificateStateException"
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    with pytest.raises(ClientError) as exc:
        iot.delete_certificate(certificateId=cid)
    assert code(exc) == "DeleteConflictException"
    iot.detach_thing_principal(thingName="meter-1", principal=arn)
    assert iot.list_thing_principals(thingName="meter-1")["principals"] == []
    iot.update_certificate(certificateId=cid, newStatus="REVOKED")
    with pytest.raises(ClientError) as exc:
        iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert code(exc) == "CertificateStateException"
    iot.delete_certificate(certificateId=cid)
    with pytest.raises(ClientError) as exc:
        iot.describe_certificate(certificateId=cid)
    assert code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        iot.attach_thing_principal(thingName="meter-1", principal=arn)
    assert code(exc) == "ResourceNotFoundException"


def test_certificate_from_csr(iot: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "dev")]))
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    made = iot.create_certificate_from_csr(certificateSigningRequest=pem, setAsActive=False)
    desc = iot.describe_certificate(certificateId=made["certificateId"])
    assert desc["certificateDescription"]["status"] == "INACTIVE"
    with pytest.raises(ClientError) as exc:
        iot.create_certificate_from_csr(certificateSigningRequest="not a csr")
    assert code(exc) == "InvalidRequestException"


def test_policies(iot: Any) -> None:
    made = iot.create_policy(policyName="pub-x", policyDocument=json.dumps(POLICY))
    assert made["policyVersionId"] == "1" and made["policyArn"].endswith(":policy/pub-x")
    with pytest.raises(ClientError) as exc:
        iot.create_policy(policyName="pub-x", policyDocument=json.dumps(POLICY))
    assert code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        iot.create_policy(policyName="bad", policyDocument="{not json")
    assert code(exc) == "MalformedPolicyException"
    got = iot.get_policy(policyName="pub-x")
    assert json.loads(got["policyDocument"]) == POLICY
    assert "pub-x" in [p["policyName"] for p in iot.list_policies()["policies"]]
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="pub-x", target=cert["certificateArn"])
    attached = iot.list_attached_policies(target=cert["certificateArn"])["policies"]
    assert [p["policyName"] for p in attached] == ["pub-x"]
    with pytest.raises(ClientError) as exc:
        iot.delete_policy(policyName="pub-x")
    assert code(exc) == "DeleteConflictException"
    iot.detach_policy(policyName="pub-x", target=cert["certificateArn"])
    assert iot.list_attached_policies(target=cert["certificateArn"])["policies"] == []
    iot.delete_policy(policyName="pub-x")
    with pytest.raises(ClientError) as exc:
        iot.get_policy(policyName="pub-x")
    assert code(exc) == "ResourceNotFoundException"


def test_access_key_refusals(server: LanternProcess, client_for: Factory, iot: Any) -> None:
    assert (server.data_dir / "access-keys.key").stat().st_mode & 0o777 == 0o600
    reader = create_key(server, "reader", "readonly")
    ro = client_for("iot", reader, region="us-west-2")
    ro.list_things()  # any region: the ARNs follow it
    with pytest.raises(ClientError) as exc:
        ro.create_thing(thingName="x")
    assert code(exc) == "AccessDeniedException"
    operator = client_for("iot", create_key(server, "ops", "operator"))
    operator.create_thing(thingName="by-operator")
    with pytest.raises(ClientError) as exc:
        operator.delete_thing(thingName="by-operator")
    assert code(exc) == "AccessDeniedException"
    wrong = client_for("iot", {**reader, "SecretAccessKey": "x" * 40})
    with pytest.raises(ClientError) as exc:
        wrong.list_things()
    assert code(exc) == "InvalidSignatureException"
    unknown = client_for("iot", {"AccessKeyId": "LKIAAAAAAAAAAAAAAAAA", "SecretAccessKey": "x"})
    with pytest.raises(ClientError) as exc:
        unknown.list_things()
    assert code(exc) == "UnrecognizedClientException"
    done = cli(server, "access-keys", "disable", "reader")
    assert done.returncode == 0, done.stderr
    with pytest.raises(ClientError) as exc:
        ro.list_things()
    assert code(exc) == "UnrecognizedClientException"
    listed = json.loads(cli(server, "access-keys", "list", "--json").stdout)
    statuses = {k["UserName"]: k["Status"] for k in listed["AccessKeyMetadata"]}
    assert statuses["reader"] == "Inactive" and statuses["admin"] == "Active"
    assert reader["SecretAccessKey"] not in (server.current_output() + json.dumps(listed))
