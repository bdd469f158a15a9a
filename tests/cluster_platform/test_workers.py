"""`lantern serve --workers 2` on the embedded default (SQLite, local files): two worker
processes listen on the same HTTP and MQTT ports, share the database, are restarted when they
die, and stop with the supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.mqtt_server import Client, ClientFiles
from support.process import LanternProcess
from support.provisioning_env import lantern_cli
from support.waiting import wait_for


@dataclass
class WorkersProcess(LanternProcess):
    workers: int = 2

    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(self.workers)]


def _listening_pids(port: int) -> set[int]:
    """Processes holding a listening TCP socket on ``port`` (from /proc)."""
    return set(_socket_pids(port, "0A"))


def _socket_pids(port: int, wanted_state: str) -> dict[int, int]:
    """Sockets on local ``port`` in ``wanted_state`` (0A listen, 01 established), per pid."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == wanted_state and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    pids: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids[int(pid)] = pids.get(int(pid), 0) + 1
        except OSError:
            continue
    return pids


def _established_pids(port: int) -> dict[int, int]:
    """Accepted (ESTABLISHED) TCP connections on local ``port``, counted per process."""
    return _socket_pids(port, "01")


def _nodes(proc: LanternProcess) -> dict[str, dict[str, object]]:
    listed = lantern_cli(proc, "cluster", "status", "--json")
    assert listed.returncode == 0, listed.stderr
    return {str(n["node_id"]): n for n in json.loads(listed.stdout)}


@pytest.mark.timeout(400)
def test_two_workers_share_the_ports_and_the_database(tmp_path: Path) -> None:
    proc = WorkersProcess(tmp_path / "data")
    proc.start(120)  # the workers start at once, on a machine shared with other tests
    try:
        wait_for(lambda: len(_nodes(proc)) == 2, 30, "both workers registered")
        nodes = _nodes(proc)
        pids = {int(n["pid"]) for n in nodes.values()}  # type: ignore[call-overload]
        assert len(pids) == 2 and proc.proc is not None and proc.proc.pid not in pids
        # Two processes listen on one HTTP port and one MQTT port.
        assert _listening_pids(proc.http_port) == pids
        assert _listening_pids(proc.mqtt_port) == pids
        assert httpx.get(f"{proc.http_url}/readyz", timeout=5).status_code == 200
        # Another `--workers` on the same ports is refused, not let in to share them.
        other = WorkersProcess(
            tmp_path / "other", http_port=proc.http_port, mqtt_port=proc.mqtt_port
        )
        refused = subprocess.run(
            other.command(), env=other.command_env(), capture_output=True, text=True, timeout=60
        )
        assert refused.returncode != 0
        assert f"port {proc.http_port} on 127.0.0.1 is already in use" in refused.stderr

        # MQTT clients connecting to the one port are spread over both workers (the kernel
        # hashes each connection to one of the listening sockets) and all are accepted.
        out = tmp_path / "claim"
        done = lantern_cli(
            proc, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
        )
        assert done.returncode == 0, done.stderr
        cert = next(out.glob("claim-*.pem"))
        files = ClientFiles(cert, cert.with_suffix(".key"), out / "ca.pem")
        clients = [Client(proc.mqtt_port, files, f"c{i}", version=4) for i in range(16)]
        try:
            for client in clients:
                client.connect()  # CONNACK 0
            per_worker = _established_pids(proc.mqtt_port)
            assert set(per_worker) == pids and sum(per_worker.values()) == 16, per_worker
        finally:
            for client in clients:
                client.stop()

        # A worker that dies is started again (same node id, new pid).
        victim_id, victim = sorted(nodes.items())[0]
        os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]

        def replaced() -> bool:
            now = _nodes(proc).get(victim_id)
            return now is not None and now["pid"] != victim["pid"] and now["state"] == "up"

        wait_for(replaced, 60, "the killed worker restarted")
        assert "exited with -9; restarting it" in proc.current_output()
        pids = {int(n["pid"]) for n in _nodes(proc).values()}  # type: ignore[call-overload]
        wait_for(lambda: _listening_pids(proc.mqtt_port) == pids, 30, "restarted worker listens")

        proc.stop(timeout=60)
    finally:
        proc.kill()

    # SIGTERM to the supervisor stopped every worker, then itself.
    assert proc.proc is not None and proc.proc.returncode == 0, proc.output
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert "Lantern stopped (every worker)." in proc.output


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
