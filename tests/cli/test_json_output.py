"""``--json`` on every list and show command: one JSON document on standard output (a list for
a list command, an object for a show command) with its documented fields, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from cli.conftest import Fleet

LISTS: dict[str, tuple[list[str], set[str]]] = {
    "claims": (["claims", "list"], {"claimId", "certificateId", "templates", "devices"}),
    "templates": (
        ["templates", "list"],
        {"templateName", "enabled", "templateBody", "preProvisioningHookUrl", "version"},
    ),
    "things": (["things", "list"], {"thingName", "serialNumber", "templateName", "createdAt"}),
    "certs": (["certs", "list"], {"certificateId", "kind", "status", "thingName"}),
    "keys": (["keys", "list"], {"keyId", "name", "scope", "ratePerMinute", "revokedAt"}),
    "deliveries": (["deliveries", "list"], set()),
    "tokens": (["tokens", "list"], {"tokenId", "project", "scope", "name", "revokedAt"}),
    "files": (["files", "list"], {"fileId", "thingName", "fileName", "size", "sha256"}),
    "schedules": (
        ["schedules", "list"],
        {"id", "key_id", "destinations", "timezone", "state", "next_fire_times"},
    ),
    "firmware": (["firmware", "list"], {"firmwareId", "name", "version", "size", "sha256"}),
    "deployments": (
        ["deployments", "list"],
        {"deploymentId", "firmwareId", "firmwareVersion", "status", "total", "counts"},
    ),
    "groups": (["groups", "list"], {"groupName", "memberCount", "description"}),
    "mqtt-users": (["mqtt-users", "list"], {"username", "project", "policyName"}),
    "policies": (["policies", "list"], {"policyName", "projectWide", "policyDocument"}),
    "audit": (["audit", "list"], {"id", "time", "actor", "action", "target", "outcome"}),
}


@pytest.mark.parametrize("name", LISTS)
def test_list_json_is_a_list_of_records_with_the_fields(fleet: Fleet, name: str) -> None:
    args, fields = LISTS[name]
    doc = fleet.json(*args)
    assert isinstance(doc, list)
    if not fields:  # nothing was pushed: an empty list, still JSON
        assert doc == []
        return
    assert doc, f"{name}: the fleet has one"
    for record in doc:
        assert fields <= set(record), sorted(fields - set(record))


def _show_cases(fleet: Fleet) -> dict[str, tuple[list[str], set[str]]]:
    ids = fleet.ids
    cert_id = fleet.json("certs", "list")[0]["certificateId"]  # type: ignore[index]
    file_id = fleet.json("files", "list")[0]["fileId"]  # type: ignore[index]
    schedule_id = fleet.json("schedules", "list")[0]["id"]  # type: ignore[index]
    return {
        "templates": (
            ["templates", "show", "DefaultProvisioningTemplate"],
            {"templateName", "templateBody", "enabled"},
        ),
        "things": (["things", "show", ids["thing"]], {"thingName", "attributes", "certificates"}),
        "certs": (["certs", "show", cert_id], {"certificateId", "certificatePem", "policyNames"}),
        "files": (["files", "get", file_id], {"fileId", "fileName", "sha256", "createdAt"}),
        "schedules": (
            ["schedules", "show", schedule_id],
            {"id", "destinations", "next_fire_times", "occurrences"},
        ),
        "firmware": (["firmware", "show", ids["firmware"]], {"firmwareId", "version", "usedBy"}),
        "deployments": (
            ["deployments", "show", ids["deployment"]],
            {"deploymentId", "firmwareId", "firmwareVersion", "counts", "executions"},
        ),
        "groups": (["groups", "show", "ward-3"], {"groupName", "memberCount", "members"}),
        "policies": (["policies", "show", "connect-only"], {"policyName", "policyDocument"}),
        "shadows get": (["shadows", "get", ids["thing"], "--name", "cfg"], {"state", "version"}),
        "shadows list": (["shadows", "list", ids["thing"]], {"results"}),
    }


def test_show_json_is_one_object_with_the_fields(fleet: Fleet) -> None:
    for name, (args, fields) in _show_cases(fleet).items():
        doc = fleet.json(*args)
        assert isinstance(doc, dict), name
        assert fields <= set(doc), (name, sorted(fields - set(doc)))


def test_json_values_are_the_records(fleet: Fleet) -> None:
    ids = fleet.ids
    thing: Any = fleet.json("things", "show", ids["thing"])
    assert thing["thingName"] == ids["thing"] and thing["serialNumber"] == "4711"
    assert thing["certificates"][0]["status"] == "ACTIVE"
    group: Any = fleet.json("groups", "show", "ward-3")
    assert group["members"] == [ids["thing"]] and group["memberCount"] == 1
    deployment: Any = fleet.json("deployments", "show", ids["deployment"])
    assert deployment["firmwareId"] == ids["firmware"]
    assert deployment["firmwareVersion"] == "2.0.1"
    # Secrets never appear: no key hash, no password hash, no full device token.
    for args in (["keys", "list"], ["mqtt-users", "list"], ["schedules", "list"]):
        text = fleet.ok(*args, "--json")
        assert "hash" not in text.lower()
        assert "abcdefghijkl" not in text  # the schedule's Slack webhook path is masked


def test_json_stdout_holds_only_the_document_in_a_real_process(fleet: Fleet) -> None:
    """As a script runs it: stdout parses as JSON whole, even for an empty list; a failing
    show prints its error on stderr and nothing on stdout."""
    for args in (["things", "list"], ["deliveries", "list"], ["templates", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "lantern", *args, "--json"],
            env=fleet.server.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert isinstance(json.loads(done.stdout), list)
    done = subprocess.run(
        [sys.executable, "-m", "lantern", "things", "show", "no-such-thing", "--json"],
        env=fleet.server.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "no-such-thing does not exist" in done.stderr
