"""The AWS CLI (``awscli`` from PyPI, unmodified) with ``--endpoint-url`` against ``lantern
serve``, and a presigned URL made by botocore fetched with httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from support.process import LanternProcess


def aws(
    server: LanternProcess, key: dict[str, str], home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_DEFAULT_REGION": "ca-central-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            *args,
            "--endpoint-url",
            server.http_url,
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_aws_cli(server: LanternProcess, admin_key: dict[str, str], tmp_path: Path) -> None:
    made = aws(
        server,
        admin_key,
        tmp_path,
        "iot",
        "create-thing",
        "--thing-name",
        "cli-thing",
        "--attribute-payload",
        '{"attributes": {"site": "north"}}',
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["thingArn"] == (
        "arn:aws:iot:ca-central-1:000000000000:thing/cli-thing"
    )
    described = aws(
        server, admin_key, tmp_path, "iot", "describe-thing", "--thing-name", "cli-thing"
    )
    assert json.loads(described.stdout)["attributes"] == {"site": "north"}
    listed = aws(server, admin_key, tmp_path, "iot", "list-things")
    assert "cli-thing" in [t["thingName"] for t in json.loads(listed.stdout)["things"]]
    cert = aws(server, admin_key, tmp_path, "iot", "create-keys-and-certificate", "--set-as-active")
    assert cert.returncode == 0, cert.stderr
    arn = json.loads(cert.stdout)["certificateArn"]
    attach = aws(
        server,
        admin_key,
        tmp_path,
        "iot",
        "attach-thing-principal",
        "--thing-name",
        "cli-thing",
        "--principal",
        arn,
    )
    assert attach.returncode == 0, attach.stderr
    principals = aws(
        server, admin_key, tmp_path, "iot", "list-thing-principals", "--thing-name", "cli-thing"
    )
    assert json.loads(principals.stdout)["principals"] == [arn]
    endpoint = aws(
        server, admin_key, tmp_path, "iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS"
    )
    assert json.loads(endpoint.stdout)["endpointAddress"] == f"localhost:{server.mqtt_port}"
    published = aws(
        server,
        admin_key,
        tmp_path,
        "iot-data",
        "publish",
        "--topic",
        "cli/retained",
        "--retain",
        "--payload",
        "hello",
    )
    assert published.returncode == 0, published.stderr
    retained = aws(
        server, admin_key, tmp_path, "iot-data", "get-retained-message", "--topic", "cli/retained"
    )
    assert json.loads(retained.stdout)["topic"] == "cli/retained"

    missing = aws(server, admin_key, tmp_path, "iot", "describe-thing", "--thing-name", "nope")
    assert missing.returncode != 0
    assert "(ResourceNotFoundException) when calling the DescribeThing operation" in missing.stderr
    bad = aws(server, {**admin_key, "SecretAccessKey": "wrong"}, tmp_path, "iot", "list-things")
    assert "(InvalidSignatureException)" in bad.stderr


def test_presigned_url(server: LanternProcess, iot: Any) -> None:
    iot.create_thing(thingName="presigned-thing")
    url = iot.generate_presigned_url(
        "describe_thing", Params={"thingName": "presigned-thing"}, ExpiresIn=60
    )
    assert "X-Amz-Signature=" in url
    answer = httpx.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["thingName"] == "presigned-thing"
    tampered = httpx.get(url.replace("presigned-thing", "other-thing"))
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    unsigned = httpx.get(f"{server.http_url}/things/presigned-thing")
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
