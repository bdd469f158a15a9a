"""Commands other than ``lantern serve`` never create a data directory: run where there is
none, they exit 2 naming the directory they looked for and how to point at the server's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lantern.audit import acting_as, current_actor
from lantern.cli.main import app

COMMANDS = [
    ["claims", "create", "--template", "DefaultProvisioningTemplate", "--out", "./claim"],
    ["claims", "list"],
    ["templates", "list"],
    ["keys", "create", "--name", "n", "--scope", "external"],
    ["tokens", "list"],
    ["audit", "list"],
    ["firmware", "list"],
    ["mqtt-users", "list"],
    ["dev", "client-cert", "--name", "d", "--out", "./dev"],
    ["shadows", "get", "thing-1"],
]


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    with acting_as(current_actor()):  # the command's actor must not outlive it here
        result = CliRunner().invoke(app, args, env={"COLUMNS": "300", **(env or {})})
    return result.exit_code, result.output


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no ``lantern-data``, as the working directory, no LANTERN_ settings."""
    for name in list(os.environ):
        if name.startswith("LANTERN_"):
            monkeypatch.delenv(name)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_command_without_data_dir_exits_2_and_creates_nothing(
    empty_cwd: Path, args: list[str]
) -> None:
    code, out = invoke(args)
    assert code == 2, out
    assert f"no Lantern data directory at {empty_cwd / 'lantern-data'}" in out
    assert "--data-dir" in out and "LANTERN_DATA_DIR" in out
    assert list(empty_cwd.iterdir()) == []  # no data directory, CA, claim or certificate files


def test_data_dir_named_by_flag_or_environment_is_the_one_reported(
    empty_cwd: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "server-data"
    code, out = invoke(["claims", "list", "--data-dir", str(missing)])
    assert code == 2 and f"no Lantern data directory at {missing}" in out, out
    code, out = invoke(["claims", "list"], env={"LANTERN_DATA_DIR": str(missing)})
    assert code == 2 and f"no Lantern data directory at {missing}" in out, out
    assert not missing.exists()


def test_serve_created_directory_is_found_from_elsewhere(empty_cwd: Path, tmp_path: Path) -> None:
    """The hint's way out works: the server's data directory passed explicitly (an existing
    directory stands in for the one `lantern serve` created)."""
    served = tmp_path / "server-data"
    served.mkdir()
    code, out = invoke(["templates", "list", "--data-dir", str(served)])
    assert code == 0 and "DefaultProvisioningTemplate" in out, out


def test_subprocess_exit_code_and_stderr(empty_cwd: Path) -> None:
    """As a user's shell sees it: exit status 2, the message on stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "lantern", "claims", "list"],
        cwd=empty_cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Lantern data directory at" in done.stderr and done.stdout == ""
    assert list(empty_cwd.iterdir()) == []
