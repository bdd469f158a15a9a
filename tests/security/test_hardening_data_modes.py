"""Data at rest: everything ``lantern serve`` keeps in its data directory (database and its WAL,
CA, keys, uploaded files, firmware images, temporary and metadata files) is mode 0600 in 0700
directories, even when the server is started with umask 022 and the directory holds files an
older version left readable by others."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hardening_kit import create_claim

from support.mqtt_server import Client
from support.process import LanternProcess
from support.provisioning_env import provision_device


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The server inherits a umask that lets others read new files, as a login shell's does."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def listing(root: Path) -> dict[str, int]:
    """Permission bits of every file and directory under ``root`` (root included)."""
    modes = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        modes[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def shared(modes: dict[str, int]) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes.items() if mode & 0o077}


def upload_a_file(server: LanternProcess, tmp_path: Path) -> None:
    claim = create_claim(server, tmp_path / "claim")
    result, files = provision_device(server, claim, tmp_path / "certs", serial="m1")
    device = Client(server.mqtt_port, files, result.thing_name)
    device.connect()
    try:
        device.subscribe(result.thing_name, qos=1)
        request = {"fileName": "scan.png", "contentType": "image/png"}
        device.publish("$aws/rules/CreateFileUploadLink", json.dumps(request).encode(), qos=1)
        link = json.loads(device.expect(timeout=10).payload)
    finally:
        device.stop()
    put = httpx.put(
        link["uploadUrl"], content=os.urandom(5000), headers={"Content-Type": "image/png"}
    )
    assert put.status_code == 201, put.text


def test_data_directory_is_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    # What an older Lantern (or a restored backup) left: readable by group and others.
    (data / "files" / "uploads").mkdir(parents=True, mode=0o755)
    legacy = data / "files" / "uploads" / "legacy-upload"
    legacy.write_bytes(b"old upload")
    (data / "admin-token").write_text("lat_legacy-admin-token\n")
    for path in (data, data / "files", data / "files" / "uploads"):
        path.chmod(0o755)
    for path in (legacy, data / "admin-token"):
        path.chmod(0o644)

    with LanternProcess(data) as server:
        upload_a_file(server, tmp_path)
        token = (data / "admin-token").read_text().strip()
        image = httpx.post(
            f"{server.http_url}/v1/firmware",
            params={"version": "1.0.0", "name": "pump"},
            content=os.urandom(20000),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert image.status_code == 201, image.text
        running = listing(data)
        assert server.stop() == 0
    stopped = listing(data)

    for expected in ("lantern.db", "lantern.db-wal", "lantern.db-shm", "ca/ca.pem", "ca/ca.key",
                     "ca/server.pem", "signing.key", "push-address.key", "admin-token",
                     "files/uploads/legacy-upload"):  # fmt: skip
        assert expected in running, sorted(running)
    assert sum(1 for name in running if name.startswith("files/firmware/")) >= 1, running
    assert sum(1 for name in running if name.startswith("files/uploads/")) == 2, running  # + legacy
    assert any(name.startswith("files/.meta/") for name in running), running
    assert shared(running) == {}
    assert shared(stopped) == {}
    for name, mode in stopped.items():
        is_dir = (data / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
