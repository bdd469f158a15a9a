"""The jobs timer runs on exactly one node at a time and is taken over within seconds when
that node is killed (kill -9: its PostgreSQL session ends and the advisory lock with it)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

from .conftest import node, start_all

# Real nodes on a machine shared with other suites start slowly: more than the default 120 s.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]

HOLDS = "jobs-timer: this node runs it now"


def _wait_for(condition: object, timeout: float, what: str) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def _rest(proc: LanternProcess) -> httpx.Client:
    token = (proc.data_dir / "admin-token").read_text().strip()
    return httpx.Client(
        base_url=proc.http_url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )


def _deploy(proc: LanternProcess, firmware_id: str, thing: str) -> str:
    with _rest(proc) as rest:
        created = rest.post("/v1/deployments", json={"firmwareId": firmware_id, "things": [thing]})
    assert created.status_code == 201, created.text
    return str(created.json()["deploymentId"])


def _execution_status(proc: LanternProcess, job_id: str) -> str:
    with _rest(proc) as rest:
        return str(rest.get(f"/v1/deployments/{job_id}").json()["executions"][0]["status"])


def test_jobs_timer_runs_on_one_node_and_is_taken_over_after_kill_9(
    tmp_path: Path, cluster_env: dict[str, str], stop_after: list[LanternProcess]
) -> None:
    nodes = [node(tmp_path, "one", cluster_env), node(tmp_path, "two", cluster_env)]
    stop_after += nodes
    start_all(nodes)
    _wait_for(lambda: any(HOLDS in n.current_output() for n in nodes), 15, "a node runs the timer")
    time.sleep(3)  # the other node has retried meanwhile (every 2 s) and must not hold it too
    holders = [n for n in nodes if HOLDS in n.current_output()]
    assert len(holders) == 1, [n.current_output()[-2000:] for n in nodes]
    (holder,) = holders
    (survivor,) = [n for n in nodes if n is not holder]

    # A thing and a firmware image (stored in S3), both through the survivor.
    out = tmp_path / "claim"
    done = lantern_cli(
        survivor, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    result, _ = provision_device(
        survivor, Claim(cert, cert.with_suffix(".key"), out / "ca.pem"), tmp_path / "dev"
    )
    with _rest(survivor) as rest:
        uploaded = rest.post("/v1/firmware", params={"version": "1.0"}, content=b"image" * 1000)
    assert uploaded.status_code == 201, uploaded.text
    firmware_id = uploaded.json()["firmwareId"]

    # Created on the node without the timer, rolled out by the node with it.
    first = _deploy(survivor, firmware_id, result.thing_name)
    _wait_for(lambda: _execution_status(survivor, first) == "QUEUED", 10, "rollout by the holder")

    assert holder.proc is not None
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    took = _wait_for(lambda: HOLDS in survivor.current_output(), 15, "takeover by the survivor")
    assert took < 10

    second = _deploy(survivor, firmware_id, result.thing_name)
    _wait_for(lambda: _execution_status(survivor, second) == "QUEUED", 10, "rollout after it")
