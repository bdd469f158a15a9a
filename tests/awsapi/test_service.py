"""The operation table: every operation this part of issue 16 names is served, at botocore's
method and path."""

from __future__ import annotations

from pathlib import Path

from lantern.awsapi.app import build_iot, build_iot_data
from lantern.awsapi.common import AwsDeps
from lantern.awsapi.service import _route_path, kind_of
from lantern.iam.keys import AccessKeys
from lantern.iam.secretbox import data_dir_box
from lantern.iam.verifier import SignatureVerifier
from lantern.pki import CertificateAuthority
from lantern.store import Database

IOT = {
    "CreateThing", "DescribeThing", "ListThings", "UpdateThing", "DeleteThing",
    "CreateThingGroup", "DescribeThingGroup", "ListThingGroups", "DeleteThingGroup",
    "AddThingToThingGroup", "RemoveThingFromThingGroup", "ListThingsInThingGroup",
    "CreateKeysAndCertificate", "CreateCertificateFromCsr", "DescribeCertificate",
    "ListCertificates", "UpdateCertificate", "DeleteCertificate", "AttachThingPrincipal",
    "DetachThingPrincipal", "ListThingPrincipals", "ListPrincipalThings",
    "CreatePolicy", "GetPolicy", "ListPolicies", "DeletePolicy", "AttachPolicy", "DetachPolicy",
    "ListAttachedPolicies",
    "CreateProvisioningTemplate", "DescribeProvisioningTemplate", "ListProvisioningTemplates",
    "UpdateProvisioningTemplate", "DeleteProvisioningTemplate",
    "DescribeEndpoint",
}  # fmt: skip
IOT_DATA = {"Publish", "GetRetainedMessage", "ListRetainedMessages"}


class NoBroker:
    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        raise AssertionError("not called")

    def retained(self, topic: str) -> tuple[bytes, int] | None:
        return None

    def retained_topics(self) -> list[tuple[str, int, int]]:
        return []


async def test_every_operation_is_routed(sqlite_db: Database, tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "ca", ["localhost"])
    deps = AwsDeps(sqlite_db, ca, lambda: "localhost", lambda: "http://localhost")
    iot, data = build_iot(deps), build_iot_data(NoBroker())
    assert set(iot.handlers) == IOT
    assert set(data.handlers) == IOT_DATA
    verifier = SignatureVerifier(AccessKeys(sqlite_db, data_dir_box(tmp_path)))
    routes = {r.name: r for r in iot.routes(verifier, lambda: "000000000000")}
    assert routes["aws.DescribeThing"].path == "/things/{thingName}"
    assert routes["aws.DescribeThing"].methods == {"GET", "HEAD"}
    assert routes["aws.ListAttachedPolicies"].path == "/attached-policies/{target:path}"
    data_routes = {r.name: r.path for r in data.routes(verifier, lambda: "000000000000")}
    assert data_routes["aws.Publish"] == "/topics/{topic:path}"


def test_route_paths_and_kinds() -> None:
    assert _route_path("/things/{thingName}/principals") == "/things/{thingName}/principals"
    assert _route_path("/jobs/{jobId}/things/{thingName}?x=1") == "/jobs/{jobId}/things/{thingName}"
    assert _route_path("/a/{rest+}") == "/a/{rest:path}"
    assert kind_of("ListThings") == "read" and kind_of("GetPolicy") == "read"
    assert kind_of("DeleteThing") == "delete" and kind_of("CreateJob") == "write"
