"""``aws.events = ["jobs"]``: a job created with boto3 and run to SUCCEEDED by a device over
MQTT (mTLS) produces AWS's ``$aws/events/jobExecution/<job>/succeeded`` and
``$aws/events/job/<job>/completed`` events, which a subscriber allowed to read them receives."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from awsapi.conftest import REGION, create_key
from awsapi.test_jobs_e2e import register
from support.mqtt_server import Client, ClientFiles
from support.net import free_port, wait_for_port
from support.process import LanternProcess

PASSWORD = "a-long-password"
WATCH_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Subscribe", "iot:Receive"],
            "Resource": ["topicfilter/$aws/events/*", "topic/$aws/events/*"],
        }
    ]
}
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive", "iot:Subscribe"],
            "Resource": [
                "topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
                "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
            ],
        }
    ],
}


def test_job_run_to_succeeded_publishes_execution_and_job_events(
    data_dir: Path, tmp_path: Path
) -> None:
    tcp_port = free_port()
    env = {
        "LANTERN_MQTT__TCP_PORT": str(tcp_port),
        "LANTERN_AWS__EVENTS": '["jobs"]',
        "LANTERN_AWS__EVENTS_REGION": "eu-west-1",
        "LANTERN_JOBS__TIMER_TICK_SECONDS": "0.3",
    }
    with LanternProcess(data_dir, env=env) as server:
        wait_for_port(tcp_port)
        key = create_key(server, "admin", "admin")
        iot = boto3.client(
            "iot",
            endpoint_url=server.http_url,
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )
        policy = tmp_path / "watch.json"
        policy.write_text(json.dumps(WATCH_POLICY))
        made = subprocess.run(
            [
                *(sys.executable, "-m", "lantern", "mqtt-users", "create", "watch"),
                f"--policy-file={policy}",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            env=server.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr

        thing = "events-dev-1"
        certs = tmp_path / "certs"
        register(iot, thing, certs)
        iot.create_policy(policyName="dev-jobs", policyDocument=json.dumps(DEVICE_POLICY))
        cert_arn = iot.list_thing_principals(thingName=thing)["principals"][0]
        iot.attach_policy(policyName="dev-jobs", target=cert_arn)

        watcher = Client(tcp_port, None, "events-watcher", 5)
        watcher.paho.username_pw_set("watch", PASSWORD)
        watcher.connect()
        assert [r.value for r in watcher.subscribe("$aws/events/#", 1)] == [1]

        iot.create_job(
            jobId="evt-1",
            targets=[f"arn:aws:iot:{REGION}:000000000000:thing/{thing}"],
            document=json.dumps({"operation": "reboot"}),
            description="events test",
        )
        deadline = time.monotonic() + 20
        while (
            iot.describe_job_execution(jobId="evt-1", thingName=thing)["execution"]["status"]
            != "QUEUED"
        ):
            assert time.monotonic() < deadline, "the execution was never queued"
            time.sleep(0.2)

        device = Client(
            server.mqtt_port,
            ClientFiles(certs / f"{thing}.pem", certs / f"{thing}.key", server.ca_file),
            thing,
            5,
        )
        device.connect()
        device.subscribe(f"$aws/things/{thing}/jobs/evt-1/update/#", 1)
        device.publish(
            f"$aws/things/{thing}/jobs/evt-1/update",
            json.dumps({"status": "SUCCEEDED", "statusDetails": {"rebooted": "yes"}}).encode(),
            qos=1,
        )
        assert device.expect(timeout=10).topic.endswith("/update/accepted")
        device.stop()

        got = _collect(watcher, 2)

        # CancelJob (force) of a job whose execution is queued, then DeleteJob of both.
        iot.create_job(
            jobId="evt-2",
            targets=[f"arn:aws:iot:{REGION}:000000000000:thing/{thing}"],
            document=json.dumps({"operation": "reboot"}),
        )
        iot.cancel_job(jobId="evt-2", force=True, comment="not today")
        canceled = _collect(watcher, 2)
        iot.delete_job(jobId="evt-1")
        deleted = _collect(watcher, 1)

        # A CONTINUOUS job: a thing leaving the target group gets its execution REMOVED.
        iot.create_thing_group(thingGroupName="evt-ward")
        iot.add_thing_to_thing_group(thingGroupName="evt-ward", thingName=thing)
        iot.create_job(
            jobId="evt-3",
            targets=[f"arn:aws:iot:{REGION}:000000000000:thinggroup/evt-ward"],
            document=json.dumps({"operation": "reboot"}),
            targetSelection="CONTINUOUS",
        )
        deadline = time.monotonic() + 20
        while not iot.list_job_executions_for_job(jobId="evt-3")["executionSummaries"]:
            assert time.monotonic() < deadline, "no execution for the group member"
            time.sleep(0.2)
        iot.remove_thing_from_thing_group(thingGroupName="evt-ward", thingName=thing)
        left = _collect(watcher, 1)
        watcher.stop()

    execution = got["$aws/events/jobExecution/evt-1/succeeded"]
    assert execution["eventType"] == "JOB_EXECUTION"
    assert execution["operation"] == "succeeded"
    assert execution["jobId"] == "evt-1"
    assert execution["status"] == "SUCCEEDED"
    assert execution["statusDetails"] == {"rebooted": "yes"}
    assert execution["thingArn"] == f"arn:aws:iot:eu-west-1:000000000000:thing/{thing}"
    assert abs(execution["timestamp"] - time.time()) < 120
    job = got["$aws/events/job/evt-1/completed"]
    assert job["eventType"] == "JOB"
    assert job["operation"] == "completed"
    assert job["status"] == "COMPLETED"
    assert job["targetSelection"] == "SNAPSHOT"
    assert job["targets"] == [f"arn:aws:iot:eu-west-1:000000000000:thing/{thing}"]
    assert job["description"] == "events test"
    assert job["jobProcessDetails"]["numberOfSucceededThings"] == 1
    assert job["jobProcessDetails"]["numberOfFailedThings"] == 0
    assert job["completedAt"] >= job["createdAt"]
    assert execution["eventId"] != job["eventId"]

    gone = canceled["$aws/events/jobExecution/evt-2/canceled"]
    assert (gone["operation"], gone["status"]) == ("canceled", "CANCELED")
    assert gone["thingArn"] == f"arn:aws:iot:eu-west-1:000000000000:thing/{thing}"
    stopped = canceled["$aws/events/job/evt-2/canceled"]
    assert (stopped["eventType"], stopped["status"]) == ("JOB", "CANCELED")
    assert stopped["jobProcessDetails"]["numberOfCanceledThings"] == 1
    removed = deleted["$aws/events/job/evt-1/deleted"]
    assert (removed["operation"], removed["status"]) == ("deleted", "DELETED")
    assert "jobProcessDetails" not in removed
    out = left["$aws/events/jobExecution/evt-3/removed"]
    assert (out["operation"], out["status"]) == ("removed", "REMOVED")


def _collect(watcher: Client, count: int) -> dict[str, dict[str, Any]]:
    """The next ``count`` events by topic (each topic once)."""
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 20
    while len(got) < count:
        message = watcher.expect(timeout=max(0.1, deadline - time.monotonic()))
        assert message.topic not in got, message.topic
        got[message.topic] = json.loads(message.payload)
    return got
