"""The operation table: every operation this part of issue 16 names is served, at botocore's
method and path."""

from __future__ import annotations

from pathlib import Path

from lantern.awsapi.app import build_iot, build_iot_data
from lantern.awsapi.common import AwsDeps
from lantern.awsapi.service import AwsService, _route_path, kind_of, routes
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
    "CreateJob", "DescribeJob", "ListJobs", "UpdateJob", "CancelJob", "DeleteJob",
    "GetJobDocument", "DescribeJobExecution", "ListJobExecutionsForJob",
    "ListJobExecutionsForThing", "CancelJobExecution", "DeleteJobExecution",
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
    served = {r.name: r for r in routes([iot, data], verifier, lambda: "000000000000")}
    assert served["aws.DescribeThing"].path == "/things/{thingName}"
    assert served["aws.DescribeThing"].methods == {"GET", "HEAD"}
    assert served["aws.ListAttachedPolicies"].path == "/attached-policies/{target:path}"
    assert served["aws.Publish"].path == "/topics/{topic:path}"
    assert served["aws.DeleteJobExecution"].path == (
        "/things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}"
    )


async def test_services_sharing_a_path_share_one_route(sqlite_db: Database, tmp_path: Path) -> None:
    iot, jobs = AwsService("iot"), AwsService("iot-jobs-data")

    async def handler(call: object) -> None:
        return None

    iot.operation("ListJobExecutionsForThing")(handler)
    jobs.operation("GetPendingJobExecutions")(handler)
    verifier = SignatureVerifier(AccessKeys(sqlite_db, data_dir_box(tmp_path)))
    [route] = routes([iot, jobs], verifier, lambda: "000000000000")
    assert route.path == "/things/{thingName}/jobs"
    assert route.name == "aws.ListJobExecutionsForThing|GetPendingJobExecutions"


def test_route_paths_and_kinds() -> None:
    assert _route_path("/things/{thingName}/principals") == "/things/{thingName}/principals"
    assert _route_path("/jobs/{jobId}/things/{thingName}?x=1") == "/jobs/{jobId}/things/{thingName}"
    assert _route_path("/a/{rest+}") == "/a/{rest:path}"
    assert kind_of("ListThings") == "read" and kind_of("GetPolicy") == "read"
    assert kind_of("DeleteThing") == "delete" and kind_of("CreateJob") == "write"


async def test_the_credential_scope_picks_the_service(sqlite_db: Database, tmp_path: Path) -> None:
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from lantern.api.app import create_app
    from lantern.awsapi.app import build_aws_router
    from lantern.awsapi.service import Call

    iot, jobs = AwsService("iot"), AwsService("iot-jobs-data")

    @iot.operation("ListJobExecutionsForThing")
    async def control(call: Call) -> dict[str, str]:
        return {"served": "iot", "thing": call.params["thingName"]}

    @jobs.operation("GetPendingJobExecutions")
    async def device(call: Call) -> dict[str, str]:
        return {"served": "iot-jobs-data", "thing": call.params["thingName"]}

    keys = AccessKeys(sqlite_db, data_dir_box(tmp_path))
    record, secret = await keys.create("t", "readonly")
    app = create_app([build_aws_router([iot, jobs], SignatureVerifier(keys), "000000000000")])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://lantern.test"
    ) as client:
        for service in ("iot", "iot-jobs-data"):
            req = AWSRequest(method="GET", url="http://lantern.test/things/t-1/jobs")
            SigV4Auth(Credentials(record.id, secret), service, "eu-west-1").add_auth(req)
            answer = await client.get("/things/t-1/jobs", headers=dict(req.headers.items()))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"served": service, "thing": "t-1"}


def test_arns_name_the_request_region_and_the_account() -> None:
    from lantern.awsapi.service import Call
    from lantern.iam.keys import ActiveKey
    from lantern.iam.verifier import Caller

    caller = Caller(ActiveKey("LKIA", "n", "admin", "s"), "sa-east-1", "iot")
    call = Call("DescribeThing", {}, caller, "123456789012")
    assert call.arn("thing/x") == "arn:aws:iot:sa-east-1:123456789012:thing/x"
