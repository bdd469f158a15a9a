"""An AWS operation Lantern does not implement, called with boto3 against ``lantern serve``:
botocore raises a ``ClientError`` that names the operation as not supported (not a parse error
of FastAPI's ``{"detail": "Not Found"}``), whether no route has the path or an implemented
operation shares it with another method. Only signed AWS calls get that answer."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from awsapi.conftest import REGION, Factory
from support.process import LanternProcess


def refusal(call: Any, **params: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value


def test_an_unimplemented_operation_is_a_clear_client_error(iot: Any) -> None:
    error = refusal(iot.list_audit_findings)
    assert error.response["Error"]["Code"] == "UnknownOperationException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "ListAuditFindings is not supported by Lantern" in str(error)


def test_an_unimplemented_method_on_an_implemented_path(iot: Any) -> None:
    # PATCH /thing-groups/{name} (UpdateThingGroup) shares its path with Describe/Create/Delete.
    error = refusal(iot.update_thing_group, thingGroupName="ward-9", thingGroupProperties={})
    assert error.response["Error"]["Code"] == "UnknownOperationException"
    assert "UpdateThingGroup is not supported by Lantern" in str(error)


def test_an_unimplemented_data_plane_operation(client_for: Factory, admin_key: Any) -> None:
    jobs = client_for("iot-jobs-data", admin_key)
    error = refusal(
        jobs.start_command_execution,
        targetArn="arn:aws:iot:eu-central-1:123456789012:thing/t",
        commandArn="arn:aws:iot:eu-central-1:123456789012:command/c",
    )
    assert error.response["Error"]["Code"] == "UnknownOperationException"
    assert "StartCommandExecution is not supported by Lantern" in str(error)


def test_a_bad_signature_is_refused_before_anything_is_said(server: LanternProcess) -> None:
    stranger = boto3.client(
        "iot",
        endpoint_url=server.http_url,
        region_name=REGION,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1}),
    )
    error = refusal(stranger.list_audit_findings)
    assert error.response["Error"]["Code"] == "UnrecognizedClientException"
    assert "not supported" not in str(error)


def test_unsigned_requests_keep_the_usual_404(server: LanternProcess) -> None:
    for path in ("/audit/findings", "/v1/no-such-route"):
        resp = httpx.post(server.http_url + path, timeout=10.0)
        assert resp.status_code == 404, resp.text
        assert "x-amzn-ErrorType" not in resp.headers
        assert resp.json() == {"detail": "Not Found"}
