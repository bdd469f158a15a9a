"""Every Jobs operation through the unmodified AWS CLI (``aws iot … --endpoint-url``) against
``lantern serve``, and the exception names it reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from awsapi.test_awscli_e2e import aws
from support.process import LanternProcess

THING_ARN = "arn:aws:iot:ca-central-1:000000000000:thing/awscli-jobs-1"
OTHER_ARN = "arn:aws:iot:ca-central-1:000000000000:thing/awscli-jobs-2"


# Each `aws` command starts a Python interpreter (seconds on a loaded machine).
@pytest.mark.timeout(400)
def test_jobs_with_the_aws_cli(
    server: LanternProcess, admin_key: dict[str, str], tmp_path: Path
) -> None:
    def run(*args: str) -> Any:
        done = aws(server, admin_key, tmp_path, "iot", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def refused(*args: str) -> str:
        done = aws(server, admin_key, tmp_path, "iot", *args)
        assert done.returncode != 0
        return done.stderr

    run("create-thing", "--thing-name", "awscli-jobs-1")
    run("create-thing", "--thing-name", "awscli-jobs-2")
    created = run(
        "create-job",
        "--job-id",
        "awscli-1",
        "--targets",
        THING_ARN,
        OTHER_ARN,
        "--document",
        '{"operation": "ping"}',
        "--description",
        "from the AWS CLI",
        "--job-executions-retry-config",
        '{"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]}',
    )
    assert created["jobArn"].endswith(":job/awscli-1")
    job = run("describe-job", "--job-id", "awscli-1")["job"]
    assert (job["status"], job["description"]) == ("IN_PROGRESS", "from the AWS CLI")
    document = run("get-job-document", "--job-id", "awscli-1")["document"]
    assert json.loads(document) == {"operation": "ping"}
    assert "awscli-1" in [j["jobId"] for j in run("list-jobs")["jobs"]]
    run("update-job", "--job-id", "awscli-1", "--description", "changed")
    execution = run(
        "describe-job-execution", "--job-id", "awscli-1", "--thing-name", "awscli-jobs-1"
    )
    assert execution["execution"]["thingArn"] == THING_ARN
    for_job = run("list-job-executions-for-job", "--job-id", "awscli-1")["executionSummaries"]
    assert [s["thingArn"] for s in for_job] == [THING_ARN, OTHER_ARN]
    for_thing = run("list-job-executions-for-thing", "--thing-name", "awscli-jobs-1")
    assert [s["jobId"] for s in for_thing["executionSummaries"]] == ["awscli-1"]

    assert "InvalidStateTransitionException" in refused("delete-job", "--job-id", "awscli-1")
    assert "ResourceNotFoundException" in refused("describe-job", "--job-id", "no-such-job")
    # One execution canceled (the other keeps the job IN_PROGRESS), then the job with force.
    run("cancel-job-execution", "--job-id", "awscli-1", "--thing-name", "awscli-jobs-2")
    canceled = run("cancel-job", "--job-id", "awscli-1", "--force", "--comment", "done")
    assert canceled["jobId"] == "awscli-1"
    run(
        "delete-job-execution",
        "--job-id",
        "awscli-1",
        "--thing-name",
        "awscli-jobs-1",
        "--execution-number",
        "1",
    )
    run("delete-job", "--job-id", "awscli-1")
