"""The README's device quickstart, run as written against a real ``lantern serve``.

The block after the README's ``test_readme_quickstart.py`` marker is run by bash in the
directory the server was started from (its data directory is ``./lantern-data``). Two things
differ from a user's terminal, both outside the commands themselves: ``lantern`` is put on
``PATH`` instead of activating a venv, and the device commands get ``--endpoint`` with the test
server's free port (the README relies on the default, 8883).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from support.process import LanternProcess

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "test_readme_quickstart.py runs this block"


def quickstart_block() -> str:
    text = README.read_text()
    after = text[text.index(MARKER) :]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match, "no sh block after the quickstart marker"
    return match.group(1)


def test_readme_quickstart_block_runs_as_written(tmp_path: Path) -> None:
    block = quickstart_block()
    for command in ("claims create", "device provision", "upload-observation", "upload-file"):
        assert f"lantern {command}" in block or f"lantern device {command}" in block, command
    lines = block.splitlines()
    assert lines[0] == ". .venv/bin/activate"
    with LanternProcess(tmp_path / "lantern-data") as server:
        script = "\n".join(lines[1:]).replace(
            "lantern device provision",
            f"lantern device provision --endpoint 127.0.0.1:{server.mqtt_port}",
        )
        for command in ("upload-observation", "upload-file"):
            script = script.replace(
                f"lantern device {command}",
                f"lantern device {command} --endpoint 127.0.0.1:{server.mqtt_port}",
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        token = (tmp_path / "lantern-data" / "admin-token").read_text().strip()
        observation_id = re.findall(r"^([0-9a-f]{8}-[0-9a-f-]{27})$", done.stdout, re.M)
        assert len(observation_id) == 1, done.stdout
        stored = httpx.get(
            f"{server.http_url}/fhir/Observation/{observation_id[0]}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert stored.status_code == 200, stored.text
        assert stored.json()["valueQuantity"]["value"] == 100
        file_id = re.search(r"file id\s+([0-9a-f]+)", done.stdout)
        assert "Stored hello (text/plain, 6 bytes)" in done.stdout and file_id, done.stdout
        listed = subprocess.run(
            ["lantern", "files", "list"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert listed.returncode == 0 and file_id.group(1) in listed.stdout, listed
    certs = tmp_path / "certs"
    assert (certs / "ca.pem").read_bytes() == server.ca_file.read_bytes()
    assert len(list(certs.glob("12345-*.key"))) == 1
