"""Every command's ``--help`` reads well in an 80-column terminal: no line wider than 80
characters and no ``<bool>`` value shown for a flag (flags take no value)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from lantern.cli.main import app


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        # typer vendors its own click: a group is what has sub-commands.
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


PATHS = _command_paths()


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"serve", "claims list", "deployments show", "device firmware-update"} <= names
    assert len(PATHS) > 60


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "lantern")
def test_help_fits_80_columns_without_bool_metavars(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Usage: lantern" in text
    assert "<bool>" not in text
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert wide == []


def test_help_in_a_real_process_at_80_columns() -> None:
    """The installed entry point, as a user's terminal runs it (not the test runner)."""
    done = subprocess.run(
        [sys.executable, "-m", "lantern", "deployments", "cancel", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    assert "--force" in done.stdout and "<bool>" not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
