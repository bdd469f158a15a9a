"""Tables at 80 columns: every line fits, and every identifier the command prints appears whole
(never cut, wrapped or ellipsized); less important columns give way first."""

from __future__ import annotations

from typing import Any

import pytest

from cli.conftest import Fleet

# command -> the --json fields holding identifiers a user copies into the next command
IDS: dict[str, tuple[list[str], list[str]]] = {
    "claims": (["claims", "list"], ["claimId"]),
    "templates": (["templates", "list"], ["templateName"]),
    "things": (["things", "list"], ["thingName"]),
    "certs": (["certs", "list"], ["certificateId", "thingName"]),
    "keys": (["keys", "list"], ["keyId"]),
    "tokens": (["tokens", "list"], ["tokenId"]),
    "files": (["files", "list"], ["fileId", "thingName"]),
    "schedules": (["schedules", "list"], ["id"]),
    "firmware": (["firmware", "list"], ["firmwareId"]),
    "deployments": (["deployments", "list"], ["deploymentId"]),
    "groups": (["groups", "list"], ["groupName"]),
    "mqtt-users": (["mqtt-users", "list"], ["username", "policyName"]),
    "policies": (["policies", "list"], ["policyName"]),
    "operators": (["operators", "list"], ["name"]),
    "access-keys": (["access-keys", "list"], ["AccessKeyId", "UserName"]),
    "jobs": (["jobs", "list"], ["jobId"]),
    "cluster": (["cluster", "status"], ["node_id"]),
}
# commands whose --json is an object around the list
WRAPPED = {"access-keys": "AccessKeyMetadata"}


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize("columns", [80])
def test_table_fits_and_shows_every_id_whole(fleet: Fleet, name: str, columns: int) -> None:
    args, fields = IDS[name]
    found: Any = fleet.json(*args)
    records: list[dict[str, Any]] = found[WRAPPED[name]] if name in WRAPPED else found
    ids = [str(r[f]) for r in records for f in fields if r.get(f)]
    assert ids, name
    out = fleet.ok(*args, columns=columns)
    wide = [line for line in out.splitlines() if len(line) > columns]
    assert wide == []
    assert "…" not in out
    missing = [i for i in ids if i not in out]
    assert missing == [], out


def test_wide_output_keeps_every_column(fleet: Fleet) -> None:
    out = fleet.ok("certs", "list", columns=200)
    assert "created" in out and "kind" in out and "Not shown" not in out
    narrow = fleet.ok("firmware", "list", columns=80)
    assert "Not shown at this width: sha256" in narrow


def test_deployments_show_at_80_columns(fleet: Fleet) -> None:
    out = fleet.ok("deployments", "show", fleet.ids["deployment"], columns=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert fleet.ids["deployment"] in out and fleet.ids["thing"] in out
    assert fleet.ids["firmware"] in out


def test_jobs_show_at_80_columns(fleet: Fleet) -> None:
    out = fleet.ok("jobs", "show", "reboot-ward-3-bedside-monitors-2026-12", columns=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert fleet.ids["thing"] in out and "…" not in out
