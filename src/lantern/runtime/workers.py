"""``lantern serve --workers N``: what the supervisor prepares before the workers start, and
the supervisor itself (:class:`lantern.cluster.workers.WorkerSupervisor`)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from lantern.cluster.mode import check_cluster_settings
from lantern.cluster.node import node_id
from lantern.cluster.workers import WorkerSupervisor
from lantern.errors import ConfigError
from lantern.pki import CertificateAuthority
from lantern.runtime.cluster_material import share_platform_material
from lantern.runtime.datadir import DataDir
from lantern.runtime.ports import PortUnavailable
from lantern.runtime.push import address_key
from lantern.settings import Settings
from lantern.store import Database
from lantern.store.signing import load_or_create_signing_key

__all__ = ["run_workers"]


async def _prepare(settings: Settings, data: DataDir, one_machine: bool) -> None:
    """The schema, the CA, keys and admin token, made once (the workers only load them)."""
    db = await Database.open(settings.effective_database_url)
    try:
        if not one_machine:
            await share_platform_material(settings, data, db)
    finally:
        await db.close()
    CertificateAuthority.load_or_create(data.ca_dir, settings.server_names)
    load_or_create_signing_key(data.root)
    data.admin_token()
    address_key(data.root)


def _fixed_port(listener: str, host: str, port: int | None) -> int | None:
    """The port every worker binds: 0 (any free port) is chosen here, once. A port already in
    use is refused here: the workers share their ports (``SO_REUSEPORT``), so without this
    check they would silently share them with another Lantern started the same way."""
    if port is None:
        return None
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PortUnavailable(listener, host, port, exc.errno) from None
        return int(s.getsockname()[1])


def worker_environment(settings: Settings, config_file: Path | None) -> dict[str, str]:
    """The supervisor's environment, with the data directory, config file and ports fixed."""
    env = dict(os.environ)
    env["LANTERN_DATA_DIR"] = str(settings.data_dir.resolve())
    if config_file is not None:
        env["LANTERN_CONFIG"] = str(config_file.resolve())
    http, mqtt = settings.http, settings.mqtt
    ports = {
        "LANTERN_HTTP__PORT": _fixed_port("http", http.host, http.port),
        "LANTERN_MQTT__PORT": _fixed_port("mqtts", mqtt.host, mqtt.port),
        "LANTERN_MQTT__ALPN_PORT": _fixed_port("mqtt-alpn", mqtt.host, mqtt.alpn_port),
        "LANTERN_MQTT__TCP_PORT": _fixed_port("tcp", mqtt.host, mqtt.tcp_port),
        "LANTERN_MQTT__WS_PORT": _fixed_port("ws", mqtt.host, mqtt.ws_port),
    }
    env.update({k: str(v) for k, v in ports.items() if v is not None})
    return env


def run_workers(settings: Settings, count: int, config_file: Path | None) -> int:
    """Prepare, then supervise ``count`` workers until Ctrl-C/SIGTERM; returns the exit code."""
    if count < 1:
        raise ConfigError(f"--workers must be 1 or more, got {count}")
    os.umask(0o077)
    one_machine = settings.cluster.nats_url is None
    check_cluster_settings(settings, one_machine=one_machine)
    env = worker_environment(settings, config_file)  # refuses ports in use first
    data = DataDir(settings.data_dir.resolve())
    data.ensure()
    data.tighten()
    asyncio.run(_prepare(settings, data, one_machine))
    supervisor = WorkerSupervisor(
        count=count,
        data_dir=data.root,
        env=env,
        node_base=node_id(settings.cluster.node_id, data.root),
        nats_url=settings.cluster.nats_url,
    )
    return supervisor.run()
