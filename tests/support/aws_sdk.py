"""Device clients of the AWS IoT Device SDK v2 (``awsiotsdk``) over mutual TLS, as the
end-to-end tests use them: connected before they are returned."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from awscrt import mqtt, mqtt5
from awsiot import mqtt5_client_builder, mqtt_connection_builder


def mqtt5_mtls_client(
    port: int, ca_file: Path, thing: str, certs: Path, timeout: float
) -> tuple[mqtt5.Client, Future[Any]]:
    """An MQTT 5 client connected as ``thing`` (``certs/<thing>.pem|.key``), and a future that
    completes once the client has stopped (wait for it before the interpreter exits: a client
    left running can crash awscrt's shutdown)."""
    connected: Future[Any] = Future()
    stopped: Future[Any] = Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(certs / f"{thing}.pem"),
        pri_key_filepath=str(certs / f"{thing}.key"),
        ca_filepath=str(ca_file),
        client_id=thing,
        clean_session=True,
        on_lifecycle_connection_success=lambda e: connected.set_result(True),
        on_lifecycle_stopped=lambda e: stopped.set_result(True),
    )
    client.start()
    connected.result(timeout)
    return client, stopped


def mqtt311_mtls_connection(
    port: int,
    ca_file: Path,
    thing: str,
    certs: Path,
    timeout: float,
    *,
    keep_alive_secs: int = 1200,
) -> mqtt.Connection:
    """An MQTT 3.1.1 connection as ``thing`` (``certs/<thing>.pem|.key``), connected."""
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(certs / f"{thing}.pem"),
        pri_key_filepath=str(certs / f"{thing}.key"),
        ca_filepath=str(ca_file),
        client_id=thing,
        clean_session=True,
        keep_alive_secs=keep_alive_secs,
    )
    connection.connect().result(timeout)
    return connection
