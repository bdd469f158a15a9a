"""Generic jobs through the AWS IoT control plane: boto3 ``iot`` against ``lantern serve`` and a
device on the AWS IoT Device SDK (IotJobsClientV2 over MQTT 5) registered with boto3 — CreateJob
with a generic document holding a presigned-URL placeholder, the device runs it and downloads
the file, DescribeJobExecution SUCCEEDED; cancel/delete (force); every error type."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from awscrt import mqtt_request_response
from awsiot import iotjobs
from botocore.exceptions import ClientError

from awsapi.conftest import REGION, TIMEOUT, Factory, cli, create_key
from support.aws_sdk import mqtt5_mtls_client
from support.process import LanternProcess

ACCOUNT = "000000000000"
FILE = b"payload-of-a-generic-job" * 1000
JOBS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": "topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
        },
    ],
}


def thing_arn(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}"


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def register(iot: Any, thing: str, certs: Path) -> None:
    """The manual registration flow: keys, thing, principal, a jobs policy."""
    made = iot.create_keys_and_certificate(setAsActive=True)
    certs.mkdir(parents=True, exist_ok=True)
    (certs / f"{thing}.pem").write_text(made["certificatePem"])
    (certs / f"{thing}.key").write_text(made["keyPair"]["PrivateKey"])
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
    try:
        iot.create_policy(policyName="jobs-device", policyDocument=json.dumps(JOBS_POLICY))
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    iot.attach_policy(policyName="jobs-device", target=made["certificateArn"])


def upload(server: LanternProcess, path: Path) -> str:
    path.write_bytes(FILE)
    done = subprocess.run(
        [sys.executable, "-m", "lantern", "firmware", "upload", str(path), "--version", "1"],
        env=server.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("Firmware ", 1)[1].split(" ", 1)[0]


def wait_for(check: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_device_runs_a_generic_job_created_with_boto3(
    server: LanternProcess, iot: Any, tmp_path: Path
) -> None:
    thing = "jobs-dev-1"
    register(iot, thing, tmp_path / "certs")
    file_id = upload(server, tmp_path / "blob.bin")
    document = {
        "operation": "install",
        "url": f"${{aws:iot:s3-presigned-url:lantern://firmware/{file_id}}}",
        "args": ["--quiet"],
    }
    created = iot.create_job(
        jobId="install-1",
        targets=[thing_arn(thing)],
        document=json.dumps(document),
        description="install a package",
        presignedUrlConfig={"expiresInSec": 300},
        timeoutConfig={"inProgressTimeoutInMinutes": 30},
    )
    assert created["jobArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:job/install-1"
    assert created["jobId"] == "install-1"
    assert created["description"] == "install a package"

    client, stopped = mqtt5_mtls_client(
        server.mqtt_port, server.ca_file, thing, tmp_path / "certs", TIMEOUT
    )
    try:
        jobs = iotjobs.IotJobsClientV2(
            client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=2,
                max_streaming_subscriptions=2,
                operation_timeout_in_seconds=30,
            ),
        )

        def started_execution() -> Any:
            started = jobs.start_next_pending_job_execution(
                iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing)
            ).result(TIMEOUT)
            return started.execution

        execution = wait_for(started_execution, "the execution to be queued")
        assert execution.job_id == "install-1"
        sent = execution.job_document
        assert sent["operation"] == "install" and sent["args"] == ["--quiet"]
        url = urlsplit(sent["url"])
        assert url.path == f"/v1/firmware/{file_id}/image"
        assert dict(parse_qsl(url.query))["thing"] == thing
        with httpx.Client(timeout=TIMEOUT) as http:
            assert http.get(sent["url"]).content == FILE
            forged = sent["url"].replace(f"thing={thing}", "thing=other")
            assert http.get(forged).status_code == 403

        running = iot.describe_job_execution(jobId="install-1", thingName=thing)["execution"]
        assert running["status"] == "IN_PROGRESS"
        assert running["thingArn"] == thing_arn(thing)
        assert 0 < running["approximateSecondsBeforeTimedOut"] <= 1800

        jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id="install-1",
                status=iotjobs.JobStatus.SUCCEEDED,
                status_details={"installed": "yes"},
            )
        ).result(TIMEOUT)
    finally:
        client.stop()
        stopped.result(TIMEOUT)

    done = iot.describe_job_execution(jobId="install-1", thingName=thing)["execution"]
    assert done["status"] == "SUCCEEDED"
    assert done["statusDetails"] == {"detailsMap": {"installed": "yes"}}
    assert (done["executionNumber"], done["versionNumber"]) == (1, 3)

    def completed() -> Any:
        job = iot.describe_job(jobId="install-1")["job"]
        return job if job["status"] == "COMPLETED" else None

    job = wait_for(completed, "the job to complete")
    assert job["targets"] == [thing_arn(thing)]
    assert job["jobProcessDetails"]["numberOfSucceededThings"] == 1
    assert job["presignedUrlConfig"] == {"expiresInSec": 300}
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    assert json.loads(iot.get_job_document(jobId="install-1")["document"]) == document
    listed = iot.list_jobs(status="COMPLETED")["jobs"]
    assert "install-1" in [j["jobId"] for j in listed]
    for_job = iot.list_job_executions_for_job(jobId="install-1")["executionSummaries"]
    assert for_job[0]["thingArn"] == thing_arn(thing)
    assert for_job[0]["jobExecutionSummary"]["status"] == "SUCCEEDED"
    for_thing = iot.list_job_executions_for_thing(thingName=thing)["executionSummaries"]
    assert [s["jobId"] for s in for_thing] == ["install-1"]

    with pytest.raises(ClientError) as info:
        iot.describe_job_execution(jobId="install-1", thingName=thing, executionNumber=2)
    assert code_of(info) == "ResourceNotFoundException"
    iot.delete_job(jobId="install-1")
    with pytest.raises(ClientError) as info:
        iot.describe_job(jobId="install-1")
    assert code_of(info) == "ResourceNotFoundException"


def test_cancel_and_delete_with_force(server: LanternProcess, iot: Any) -> None:
    for name in ("cx-1", "cx-2"):
        iot.create_thing(thingName=name)
    iot.create_thing_group(thingGroupName="cx-ward")
    iot.add_thing_to_thing_group(thingGroupName="cx-ward", thingName="cx-1")
    iot.add_thing_to_thing_group(thingGroupName="cx-ward", thingName="cx-2")
    group_arn = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/cx-ward"
    iot.create_job(
        jobId="cx",
        targets=[group_arn],
        document='{"op": "x"}',
        targetSelection="CONTINUOUS",
        jobExecutionsRetryConfig={
            "criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]
        },
        jobExecutionsRolloutConfig={
            "exponentialRate": {
                "baseRatePerMinute": 10,
                "incrementFactor": 2.0,
                "rateIncreaseCriteria": {"numberOfNotifiedThings": 5},
            }
        },
        abortConfig={
            "criteriaList": [
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 50.0,
                    "minNumberOfExecutedThings": 10,
                }
            ]
        },
    )
    job = iot.describe_job(jobId="cx")["job"]
    assert job["targetSelection"] == "CONTINUOUS"
    assert job["targets"] == [group_arn]
    assert job["jobExecutionsRetryConfig"]["criteriaList"][0]["numberOfRetries"] == 2
    assert job["jobExecutionsRolloutConfig"]["exponentialRate"]["incrementFactor"] == 2.0
    assert job["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 50.0
    assert job["jobProcessDetails"]["numberOfQueuedThings"] == 2
    assert "cx" in [j["jobId"] for j in iot.list_jobs(thingGroupName="cx-ward")["jobs"]]

    with pytest.raises(ClientError) as info:
        iot.delete_job(jobId="cx")
    assert code_of(info) == "InvalidStateTransitionException"
    with pytest.raises(ClientError) as info:
        iot.cancel_job_execution(jobId="cx", thingName="cx-1", expectedVersion=9)
    assert code_of(info) == "VersionConflictException"
    iot.cancel_job_execution(jobId="cx", thingName="cx-1", statusDetails={"why": "ops"})
    one = iot.describe_job_execution(jobId="cx", thingName="cx-1")["execution"]
    assert one["status"] == "CANCELED" and one["statusDetails"]["detailsMap"] == {"why": "ops"}
    with pytest.raises(ClientError) as info:
        iot.cancel_job_execution(jobId="cx", thingName="cx-1")
    assert code_of(info) == "InvalidStateTransitionException"
    with pytest.raises(ClientError) as info:
        iot.delete_job_execution(jobId="cx", thingName="cx-2", executionNumber=1)
    assert code_of(info) == "InvalidStateTransitionException"
    iot.delete_job_execution(jobId="cx", thingName="cx-1", executionNumber=1)

    canceled = iot.cancel_job(jobId="cx", reasonCode="OPS", comment="stop", force=True)
    assert canceled["jobId"] == "cx"
    job = iot.describe_job(jobId="cx")["job"]
    assert (job["status"], job["forceCanceled"], job["reasonCode"], job["comment"]) == (
        "CANCELED",
        True,
        "OPS",
        "stop",
    )
    iot.delete_job(jobId="cx", force=True)
    assert "cx" not in [j["jobId"] for j in iot.list_jobs()["jobs"]]


def test_error_types(server: LanternProcess, iot: Any, client_for: Factory) -> None:
    iot.create_thing(thingName="err-1")
    target = [thing_arn("err-1")]

    def create_code(**kwargs: Any) -> str:
        with pytest.raises(ClientError) as info:
            iot.create_job(**{"jobId": "err", "targets": target, "document": "{}", **kwargs})
        return code_of(info)

    assert create_code(document="{not json") == "InvalidRequestException"
    assert create_code(document=json.dumps({"x": "y" * 40_000})) == "InvalidRequestException"
    assert create_code(targets=["arn:aws:iot:eu-central-1:0:cert/abc"]) == "InvalidRequestException"
    assert create_code(targets=[thing_arn("ghost")]) == "ResourceNotFoundException"
    assert create_code(document='{"u": "${aws:iot:s3-presigned-url:s3://elsewhere/x}"}') == (
        "InvalidRequestException"
    )
    assert create_code(timeoutConfig={"inProgressTimeoutInMinutes": 0}) == (
        "InvalidRequestException"
    )
    assert create_code(schedulingConfig={"startTime": "2030-01-01T00:00"}) == (
        "InvalidRequestException"
    )
    with pytest.raises(ClientError) as info:
        iot.create_job(jobId="err", targets=target)  # neither document nor documentSource
    assert code_of(info) == "InvalidRequestException"
    iot.create_job(jobId="err", targets=target, document="{}")
    assert create_code() == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as info:
        iot.describe_job(jobId="nope")
    assert code_of(info) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as info:
        iot.get_job_document(jobId="nope")
    assert code_of(info) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as info:
        iot.describe_job_execution(jobId="err", thingName="ghost")
    assert code_of(info) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as info:
        iot.list_job_executions_for_job(jobId="err", status="BOGUS")
    assert code_of(info) == "InvalidRequestException"
    with pytest.raises(ClientError) as info:
        iot.update_job(jobId="err", timeoutConfig={"inProgressTimeoutInMinutes": 99_999})
    assert code_of(info) == "InvalidRequestException"
    iot.update_job(jobId="err", description="changed")
    assert iot.describe_job(jobId="err")["job"]["description"] == "changed"

    readonly = client_for("iot", create_key(server, "jobs-reader", "readonly"))
    assert readonly.describe_job(jobId="err")["job"]["jobId"] == "err"
    with pytest.raises(ClientError) as info:
        readonly.cancel_job(jobId="err")
    assert code_of(info) == "AccessDeniedException"
    iot.cancel_job(jobId="err")
    with pytest.raises(ClientError) as info:
        iot.cancel_job(jobId="err")
    assert code_of(info) == "InvalidRequestException"


def test_cli_jobs(server: LanternProcess, iot: Any, tmp_path: Path) -> None:
    iot.create_thing(thingName="cli-1")
    doc = tmp_path / "job.json"
    doc.write_text(json.dumps({"operation": "rotate-logs"}))
    made = cli(server, "jobs", "create", "rotate", "--document", str(doc), "--things", "cli-1")
    assert made.returncode == 0, made.stderr
    assert "Job rotate created for 1 thing(s)" in made.stdout
    assert "lantern jobs show rotate" in made.stdout

    def queued() -> Any:
        e = iot.describe_job_execution(jobId="rotate", thingName="cli-1")["execution"]
        return e["status"] == "QUEUED" and e["versionNumber"] == 1

    wait_for(queued, "the server to queue the CLI's job")
    listed = cli(server, "jobs", "list", "--json")
    assert {"jobId": "rotate", "kind": "generic"}.items() <= next(
        j for j in json.loads(listed.stdout) if j["jobId"] == "rotate"
    ).items()
    shown = json.loads(cli(server, "jobs", "show", "rotate", "--json").stdout)
    assert shown["document"] == {"operation": "rotate-logs"}
    assert shown["executions"][0]["thingName"] == "cli-1"
    refused = cli(server, "jobs", "delete", "rotate")
    assert refused.returncode == 1 and "cancel it first or delete with force" in refused.stderr
    canceled = cli(server, "jobs", "cancel", "rotate", "--reason-code", "OPS")
    assert canceled.returncode == 0 and "1 execution(s) canceled" in canceled.stdout
    assert iot.describe_job(jobId="rotate")["job"]["reasonCode"] == "OPS"
    assert cli(server, "jobs", "delete", "rotate").returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    failed = cli(server, "jobs", "create", "bad", "--document", str(bad), "--things", "cli-1")
    assert failed.returncode == 1 and "must be a JSON object" in failed.stderr
