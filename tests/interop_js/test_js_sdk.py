"""Interoperability with the official AWS IoT Device SDK v2 for JavaScript, the SDK the seed's
device samples are written with: ``device.js`` (a device program on the SDK's public API only)
provisions itself against a real ``lantern serve`` with a claim made by ``lantern claims create``
(CreateKeysAndCertificate and CreateCertificateFromCsr; IotIdentityClient over MQTT 3.1.1 and
IotIdentityClientv2 over MQTT 5), reconnects as the device, records an observation and uploads a
file. ``npm ci`` installs the SDK from package-lock.json once per session when needed.

Without node/npm or without the npm registry the module is skipped, except under CI=true where it
fails: CI's machine has both."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.process import LanternProcess
from support.provisioning_env import Claim, claim_files, lantern_cli

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SDK = "aws-iot-device-sdk-v2"
# What the device program itself waits for a reply (its --timeout), and what the test waits for
# the whole program.
DEVICE_TIMEOUT = 20
RUN_TIMEOUT = 60
NETWORK_ERRORS = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"network|socket hang up|proxy",
    re.IGNORECASE,
)
BATTERY = {
    "code": "9750d5e5-d766-4793-a97d-16179578cc4d",
    "system": "http://lifeomic.com/fhir/devices",
    "display": "Battery Percentage",
}


def unavailable(reason: str, details: str = "") -> None:
    """Skip for a missing tool or registry, but fail under CI, whose machine has both."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the JavaScript SDK interop tests may not skip)\n{details}")
    pytest.skip(reason)


def pinned_sdk_version() -> str:
    return str(json.loads((HERE / "package.json").read_text())["dependencies"][SDK])


def installed_sdk_version() -> str | None:
    manifest = HERE / "node_modules" / SDK / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def report(config: pytest.Config, line: str) -> None:
    """Show ``line`` on the terminal now, even while output is being captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)


@dataclass(frozen=True)
class Node:
    """The node binary and the SDK installed under tests/interop_js/node_modules."""

    node: str
    sdk_version: str


@pytest.fixture(scope="session")
def js_sdk(request: pytest.FixtureRequest) -> Node:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed (Node >= 18: apt-get install nodejs npm)")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    major = re.match(r"v(\d+)\.", version.stdout.strip())
    if major is None or int(major.group(1)) < 18:
        unavailable(f"Node >= 18 is needed (global fetch); found {version.stdout.strip()}")
    if installed_sdk_version() != pinned_sdk_version():
        started = time.monotonic()
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        took = time.monotonic() - started
        if done.returncode != 0:
            output = done.stdout + done.stderr
            cause = next((ln for ln in output.splitlines() if NETWORK_ERRORS.search(ln)), None)
            if cause is not None:
                unavailable(
                    f"`npm ci` could not reach the npm registry ({cause.strip()}); run "
                    f"`cd {HERE.relative_to(HERE.parents[1])} && npm ci` with network access",
                    output[-4000:],
                )
            pytest.fail(f"`npm ci` in {HERE} failed after {took:.0f} s:\n{output[-4000:]}")
        report(request.config, f"interop_js: `npm ci` installed {SDK} in {took:.1f} s")
    installed = installed_sdk_version()
    assert installed == pinned_sdk_version(), installed
    return Node(node, installed)


@pytest.fixture(scope="module")
def server(js_sdk: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    proc = LanternProcess(tmp_path_factory.mktemp("lantern") / "data")
    with proc:
        yield proc


@pytest.fixture(scope="module")
def claim(server: LanternProcess, tmp_path_factory: pytest.TempPathFactory) -> Claim:
    return claim_files(server, tmp_path_factory.mktemp("claim"))


@dataclass
class JsDevice:
    """Runs ``node device.js`` against ``server`` as a user would run the seed's scripts."""

    js: Node
    server: LanternProcess
    ca: Path

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        connection = ["--endpoint", "localhost", "--port", str(self.server.mqtt_port)]
        connection += ["--ca", str(self.ca), "--timeout", str(DEVICE_TIMEOUT)]
        return subprocess.run(
            [self.js.node, "device.js", command, *connection, *args],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )

    def ok(self, command: str, *args: str) -> dict[str, Any]:
        done = self.run(command, *args)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def provision(
        self, claim: Claim, certs: Path, serial: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "provision",
            f"--claimCert={claim.cert}",
            f"--claimKey={claim.key}",
            f"--serialNumber={serial}",
            "--manufacturer=my-company",
            "--name=my-device",
            "--model=prototype",
            "--certs-dir",
            str(certs),
            *extra,
        )


@pytest.fixture
def js(js_sdk: Node, server: LanternProcess, claim: Claim) -> JsDevice:
    return JsDevice(js_sdk, server, claim.ca)


def admin(server: LanternProcess) -> dict[str, str]:
    token = (server.data_dir / "admin-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def admin_get(server: LanternProcess, path: str, **params: str) -> httpx.Response:
    r = httpx.get(f"{server.http_url}{path}", params=params, headers=admin(server), timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r


def make_csr(directory: Path) -> tuple[Path, Path]:
    """A P-256 key and its CSR, as a device with its own key generator would have them."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "js-device")]))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    csr_file, key_file = directory / "device.csr", directory / "device-own.key"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return csr_file, key_file


def public_der(obj: Any) -> bytes:
    return bytes(
        obj.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def provision_ok(js: JsDevice, claim: Claim, certs: Path, *extra: str) -> str:
    serial = f"js-{uuid.uuid4().hex[:8]}"
    done = js.provision(claim, certs, serial, *extra)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    thing = str(json.loads(done.stdout)["thingName"])
    assert thing.startswith(f"{serial}-")
    return thing


@pytest.mark.parametrize("identity", ["mqtt311", "mqtt5"])
@pytest.mark.parametrize("key_source", ["create-keys", "csr"])
def test_provision_reconnect_and_record_an_observation(
    js: JsDevice,
    server: LanternProcess,
    claim: Claim,
    tmp_path: Path,
    identity: str,
    key_source: str,
) -> None:
    certs = tmp_path / "certs"
    extra = ["--mqtt5"] if identity == "mqtt5" else []
    own_key = None
    if key_source == "csr":
        csr, own_key = make_csr(tmp_path / "csr")
        extra += ["--csr", str(csr), "--csrKey", str(own_key)]
    serial = f"js-{uuid.uuid4().hex[:8]}"
    done = js.provision(claim, certs, serial, *extra)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout)
    thing = result["thingName"]
    # DefaultProvisioningTemplate names the thing <SerialNumber>-<first 12 hex of the cert id>.
    assert re.fullmatch(r"[0-9a-f]{64}", result["certificateId"])
    assert thing == f"{serial}-{result['certificateId'][:12]}"
    assert result["deviceConfiguration"] == {}

    cert_file, key_file = certs / f"{thing}.pem", certs / f"{thing}.key"
    assert sorted(p.name for p in certs.iterdir()) == sorted([cert_file.name, key_file.name])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # device.js writes it so
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert public_der(cert) == public_der(key)
    ca = x509.load_pem_x509_certificate(claim.ca.read_bytes())
    assert cert.issuer == ca.subject
    if own_key is not None:
        assert key_file.read_bytes() == own_key.read_bytes()

    # Reconnect as the device (client id = thing name) and record the seed's battery reading.
    reply = js.ok(
        "upload-observation",
        f"--deviceName={thing}",
        "--certs-dir",
        str(certs),
        "--payloadValue=100",
        "--unit=%",
        f"--code={BATTERY['code']}",
        f"--codeSystem={BATTERY['system']}",
        f"--codeDisplay={BATTERY['display']}",
    )
    assert isinstance(reply["timestamp"], int)
    stored = admin_get(server, f"/fhir/Observation/{reply['observationId']}").json()
    assert stored["resourceType"] == "Observation"
    assert stored["status"] == "final"
    assert stored["valueQuantity"] == {"value": 100, "unit": "%"}
    assert stored["code"]["coding"] == [BATTERY]
    assert stored["device"] == {"reference": f"Device/{thing}"}
    # RegisterThing's parameters became the thing's FHIR Device.
    devices = admin_get(server, "/fhir/Device", identifier=thing).json()
    assert devices["total"] == 1
    device = devices["entry"][0]["resource"]
    assert device["serialNumber"] == serial
    assert device["manufacturer"] == "my-company"
    assert device["modelNumber"] == "prototype"
    assert [n["name"] for n in device["deviceName"]] == ["my-device"]


def test_device_uploads_a_file_through_the_link_it_is_sent(
    js: JsDevice, server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    thing = provision_ok(js, claim, certs)
    notes = tmp_path / "x.txt"
    notes.write_text("battery 100%\nall good\n")
    result = js.ok(
        "upload-link",
        f"--deviceName={thing}",
        "--certs-dir",
        str(certs),
        "--fileName=x.txt",
        "--contentType=text/plain",
        "--filePath",
        str(notes),
    )
    digest = hashlib.sha256(notes.read_bytes()).hexdigest()
    assert result["status"] == 201
    assert result["response"]["sha256"] == digest
    assert result["response"]["fileId"] == result["fileId"]
    listed = admin_get(server, "/files", thing=thing).json()["files"]
    assert [(f["fileName"], f["contentType"], f["size"], f["sha256"]) for f in listed] == [
        ("x.txt", "text/plain", notes.stat().st_size, digest)
    ]
    content = admin_get(server, f"/files/{result['fileId']}/content")
    assert content.content == notes.read_bytes()


def test_a_persistent_session_is_reported_on_reconnect(
    js: JsDevice, claim: Claim, tmp_path: Path
) -> None:
    """The SDK's MQTT 3.1.1 builder asks for a persistent session by default: the CONNACK's
    session-present flag must say whether the server kept it (as AWS IoT does)."""
    certs = tmp_path / "certs"
    thing = provision_ok(js, claim, certs)
    device = [f"--deviceName={thing}", "--certs-dir", str(certs), "--payloadValue=97"]
    first = js.ok("upload-observation", *device)
    second = js.ok("upload-observation", *device)
    clean = js.ok("upload-observation", *device, "--clean-session")
    assert (first["sessionPresent"], second["sessionPresent"], clean["sessionPresent"]) == (
        False,
        True,
        False,
    )
    assert len({first["observationId"], second["observationId"], clean["observationId"]}) == 3


@pytest.mark.parametrize("identity", ["mqtt311", "mqtt5"])
def test_register_thing_rejection_exits_with_its_error_code(
    js: JsDevice, claim: Claim, tmp_path: Path, identity: str
) -> None:
    certs = tmp_path / "certs"
    extra = ["--mqtt5"] if identity == "mqtt5" else []
    done = js.provision(claim, certs, "not a serial!", *extra)
    assert done.returncode == 1, done
    assert "provision/json/rejected" in done.stderr
    assert "statusCode=400" in done.stderr and "errorCode=InvalidParameters" in done.stderr
    assert "SerialNumber" in done.stderr
    assert not certs.exists() or not any(certs.iterdir())


def test_claim_device_limit_is_refused_with_limit_exceeded(
    js: JsDevice, server: LanternProcess, tmp_path: Path
) -> None:
    limited = claim_files(server, tmp_path / "claim", "--device-limit", "1")
    provision_ok(js, limited, tmp_path / "first")
    done = js.provision(limited, tmp_path / "second", "js-second")
    assert done.returncode == 1, done
    assert "statusCode=403" in done.stderr and "errorCode=LimitExceeded" in done.stderr


@pytest.mark.parametrize("identity", ["mqtt311", "mqtt5"])
def test_revoked_claim_cannot_connect(
    js: JsDevice, server: LanternProcess, tmp_path: Path, identity: str
) -> None:
    revoked = claim_files(server, tmp_path / "claim")
    done = lantern_cli(server, "claims", "revoke", revoked.cert.stem)
    assert done.returncode == 0, done.stderr
    extra = ["--mqtt5"] if identity == "mqtt5" else []
    done = js.provision(revoked, tmp_path / "certs", "js-revoked", *extra)
    assert done.returncode == 1, done
    assert "cannot connect" in done.stderr
    if identity == "mqtt5":
        assert "CONNACK reason 0x87" in done.stderr  # Not authorized
    # MQTT 3.1.1: the CRT reports any refusing CONNACK as AWS_ERROR_MQTT_PROTOCOL_ERROR.


def test_device_data_rejections_exit_with_their_error_code(
    js: JsDevice, claim: Claim, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    thing = provision_ok(js, claim, certs)
    device = [f"--deviceName={thing}", "--certs-dir", str(certs)]
    bad_value = js.run("upload-observation", *device, "--payloadValue=lots")
    assert bad_value.returncode == 1, bad_value
    assert f"{thing}/FHIRIngest/rejected" in bad_value.stderr
    assert "statusCode=400" in bad_value.stderr and "value" in bad_value.stderr
    bad_name = js.run("upload-link", *device, "--fileName=../x.txt", "--contentType=text/plain")
    assert bad_name.returncode == 1, bad_name
    assert f"{thing}/CreateFileUploadLink/rejected" in bad_name.stderr
    assert "statusCode=400" in bad_name.stderr and "fileName" in bad_name.stderr
    # Another thing's name as client id: the server refuses the connection.
    other = js.run("upload-observation", *device, "--clientId=someone-else", "--payloadValue=1")
    assert other.returncode == 1 and "cannot connect" in other.stderr, other
