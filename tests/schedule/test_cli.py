"""``lantern schedules``: what an operator sees."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lantern.audit import acting_as, current_actor
from lantern.cli.main import app
from lantern.push.keys import KeyService
from lantern.store import Database

runner = CliRunner()


def make_key(data_dir: Path, scope: str = "external") -> str:
    async def go() -> str:
        db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}")
        try:
            key, _ = await KeyService(db).create("Study org", scope)  # type: ignore[arg-type]
            return key.id
        finally:
            await db.close()

    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(go())


def cli(data_dir: Path, *args: str) -> tuple[int, str]:
    # In this process the command's actor (set for "the rest of the context", as a CLI run is)
    # must not leak into the tests that follow.
    with acting_as(current_actor()):
        result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.output


CREATE = [
    "schedules", "create", "--activity", "act-1", "--participant", "U1",
    "--to", "apns:" + "ab" * 32, "--title", "Survey", "--message", "Please answer",
    "--timezone", "Asia/Kolkata", "--start", "2030-01-06T00:00", "--repeat", "custom",
    "--times", "08:00,20:00",
]  # fmt: skip


def test_create_list_show_pause_resume_delete(data_dir: Path) -> None:
    key = make_key(data_dir)
    # No APNs provider is configured here: the operator keeps the schedule on purpose.
    code, out = cli(data_dir, *CREATE, "--key", key, "--allow-unconfigured")
    assert code == 0, out
    assert "2030-01-06T08:00:00+05:30" in out and "2030-01-06T20:00:00+05:30" in out
    sid = out.split()[1]
    assert sid.startswith("sch_")
    assert "abab" * 16 not in out  # tokens are masked
    code, out = cli(data_dir, "schedules", "list")
    assert code == 0 and sid in out
    code, out = cli(data_dir, "schedules", "show", sid)
    assert code == 0 and "next fire times" in out
    assert cli(data_dir, "schedules", "pause", sid) == (0, f"{sid}: paused\n")
    code, out = cli(data_dir, "schedules", "resume", sid)
    assert code == 0 and "active" in out and "next fire: 2030-01-06T08:00:00+05:30" in out
    code, out = cli(data_dir, "schedules", "delete", sid)
    assert code == 0 and "deleted" in out
    code, out = cli(data_dir, "schedules", "show", sid)
    assert code == 1 and "no schedule" in out


def test_errors_say_what_is_wrong_and_create_nothing(data_dir: Path) -> None:
    key = make_key(data_dir)
    code, out = cli(data_dir, *CREATE, "--key", "key_nope")
    assert code == 1 and "no API key" in out
    bad = [a if a != "Asia/Kolkata" else "Asia/Atlantis" for a in CREATE]
    code, out = cli(data_dir, *bad, "--key", key)
    assert code == 1 and "timezone" in out
    scoped = [a if not a.startswith("apns:") else "sms:+15551234567" for a in CREATE]
    code, out = cli(data_dir, *scoped, "--key", key)
    assert code == 1 and "may not send to sms" in out
    code, out = cli(data_dir, "schedules", "list")
    assert code == 0 and "no schedules" in out


def test_destination_without_a_configured_provider_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 naming the setting that enables the provider, nothing created; configuring it (in
    the settings the command reads) or --allow-unconfigured lets the schedule be created."""
    for name in [n for n in os.environ if n.startswith("LANTERN_PUSH__")]:
        monkeypatch.delenv(name)
    key = make_key(data_dir)
    with acting_as(current_actor()):
        result = runner.invoke(app, [*CREATE, "--key", key, "--data-dir", str(data_dir)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "no apns provider is configured on this gateway" in result.stderr
    assert "push.apns.key_file" in result.stderr and "--allow-unconfigured" in result.stderr
    code, out = cli(data_dir, "schedules", "list")
    assert code == 0 and "no schedules" in out
    slack = [a if not a.startswith("apns:") else "slack:T0/B0/abcdefghij" for a in CREATE]
    internal = make_key(data_dir, "internal")
    code, out = cli(data_dir, *slack, "--key", internal)
    assert code == 2 and "push.slack.enabled = true" in out
    monkeypatch.setenv("LANTERN_PUSH__SLACK__ENABLED", "true")
    code, out = cli(data_dir, *slack, "--key", internal)
    assert code == 0 and "created" in out
