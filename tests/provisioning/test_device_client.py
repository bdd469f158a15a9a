"""The device client (``lantern.device``) against ``lantern serve``: descriptors, failures by step.

Regression for provisioning bursts where a few flows never got CONNACK: paho's own network loop
waits with ``select()``, which fails for descriptors numbered 1024 and above; paho then took the
connection for lost and reconnected without ever sending CONNECT again.
"""

from __future__ import annotations

import gc
import os
import resource
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lantern.device import DeviceClient, DeviceError, Endpoint, provision
from lantern.pki import CertificateAuthority
from support.mqtt_server import ClientFiles
from support.process import LanternProcess
from support.provisioning_env import Claim, provision_device

PARAMS = {"SerialNumber": "1", "Manufacturer": "acme", "Name": "n", "Model": "m"}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    """Hold enough descriptors open that every new one is numbered above 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip(f"the hard descriptor limit ({hard}) is below 1300")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_provision_when_descriptors_are_numbered_above_1024(
    server: LanternProcess, claim: Claim, high_descriptors: None
) -> None:
    result = provision(
        Endpoint("localhost", server.mqtt_port),
        ca_file=claim.ca,
        claim_cert=claim.cert,
        claim_key=claim.key,
        parameters={**PARAMS, "SerialNumber": "fd-high"},
        timeout=15,
    )
    assert result.thing_name.startswith("fd-high")


def test_flows_leave_no_descriptor_open(server: LanternProcess, claim: Claim) -> None:
    gc.collect()
    gc.disable()  # descriptors must be closed by the client, not by the garbage collector
    try:
        before = _open_fds()
        for i in range(5):
            provision(
                Endpoint("localhost", server.mqtt_port),
                ca_file=claim.ca,
                claim_cert=claim.cert,
                claim_key=claim.key,
                parameters={**PARAMS, "SerialNumber": f"fd-{i}"},
            )
        assert _open_fds() == before
        assert not [t for t in threading.enumerate() if t.name.startswith("lantern-device-")]
    finally:
        gc.enable()


def _client(port: int, files: ClientFiles, *, timeout: float = 10) -> DeviceClient:
    return DeviceClient(
        Endpoint("127.0.0.1", port),
        ca_file=files.ca,
        cert_file=files.cert,
        key_file=files.key,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def device(
    server: LanternProcess, claim: Claim, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, ClientFiles]:
    result, files = provision_device(server, claim, tmp_path_factory.mktemp("dev"), "steps")
    return result.thing_name, files


def test_failure_names_the_tcp_step(device: tuple[str, ClientFiles]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeviceError, match=r"cannot open a TCP connection to 127\.0\.0\.1:\d+"):
        _client(port, device[1]).connect()


def test_failure_names_the_tls_step(
    server: LanternProcess, device: tuple[str, ClientFiles], tmp_path: Path
) -> None:
    other_ca, _ = CertificateAuthority.load_or_create(tmp_path / "other")
    files = ClientFiles(device[1].cert, device[1].key, other_ca.ca_file)
    with pytest.raises(DeviceError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed: .*CERT"):
        _client(server.mqtt_port, files).connect()


def test_failure_names_the_connack_step(device: tuple[str, ClientFiles], tmp_path: Path) -> None:
    """A TLS server that completes the handshake and never answers CONNECT."""
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "silent")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(ca.server_cert_file, ca.server_key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        accepted.append(ctx.wrap_socket(conn, server_side=True))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    files = ClientFiles(device[1].cert, device[1].key, ca.ca_file)
    try:
        with pytest.raises(DeviceError, match=r"is up, but no CONNACK came within 1 s"):
            _client(listener.getsockname()[1], files, timeout=1).connect()
    finally:
        thread.join(5)
        for sock in accepted:
            sock.close()
        listener.close()


def test_refused_certificate_is_reported_before_the_timeout(
    server: LanternProcess, device: tuple[str, ClientFiles]
) -> None:
    # A device certificate used with another thing's client id: CONNACK "not authorized".
    name, files = device
    client = DeviceClient(
        Endpoint("127.0.0.1", server.mqtt_port),
        ca_file=files.ca,
        cert_file=files.cert,
        key_file=files.key,
        client_id=f"{name}-not-mine",
        timeout=30,
    )
    with pytest.raises(DeviceError, match="refused the connection"):
        client.connect()


def test_lost_connection_fails_the_wait_at_once(
    server: LanternProcess, device: tuple[str, ClientFiles]
) -> None:
    """A second connection with the same client id takes the session over: the first client's
    pending wait fails with 'connection lost' instead of waiting for its timeout."""
    name, files = device
    first = DeviceClient(
        Endpoint("127.0.0.1", server.mqtt_port),
        ca_file=files.ca,
        cert_file=files.cert,
        key_file=files.key,
        client_id=name,
        timeout=60,
    ).connect()
    try:
        second = DeviceClient(
            Endpoint("127.0.0.1", server.mqtt_port),
            ca_file=files.ca,
            cert_file=files.cert,
            key_file=files.key,
            client_id=name,
        ).connect()
        second.close()
        with pytest.raises(DeviceError, match=r"connection to .* lost"):
            first.receive([f"{name}/never"])
    finally:
        first.close()
