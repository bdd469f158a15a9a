"""Fleet provisioning by claim, on the wire (docs/device-topics.md): the device's half."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lantern.device.client import DeviceClient, DeviceError, Endpoint

__all__ = ["ProvisionResult", "provision", "write_credentials"]


@dataclass(frozen=True)
class ProvisionResult:
    thing_name: str
    certificate_id: str
    certificate_pem: str
    private_key_pem: str
    device_configuration: dict[str, str]


def _new_csr() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lantern-device")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def provision(
    endpoint: Endpoint,
    *,
    ca_file: Path,
    claim_cert: Path,
    claim_key: Path,
    parameters: dict[str, str],
    template: str = "DefaultProvisioningTemplate",
    use_csr: bool = False,
    timeout: float = 30.0,
) -> ProvisionResult:
    """Get a device certificate with the claim certificate and register the thing.

    ``use_csr`` keeps the private key on the device (CreateCertificateFromCsr); otherwise the
    server generates the key pair (CreateKeysAndCertificate).
    """
    with DeviceClient(
        endpoint, ca_file=ca_file, cert_file=claim_cert, key_file=claim_key, timeout=timeout
    ) as client:
        if use_csr:
            csr_pem, key_pem = _new_csr()
            created = client.request(
                "$aws/certificates/create-from-csr/json", {"certificateSigningRequest": csr_pem}
            )
        else:
            created = client.request("$aws/certificates/create/json", {})
            key_pem = created.get("privateKey", "")
        token = created.get("certificateOwnershipToken")
        if not isinstance(token, str) or not key_pem:
            raise DeviceError("the certificate answer lacks an ownership token or key")
        registered = client.request(
            f"$aws/provisioning-templates/{template}/provision/json",
            {"certificateOwnershipToken": token, "parameters": parameters},
        )
    thing = registered.get("thingName")
    if not isinstance(thing, str) or not thing:
        raise DeviceError("RegisterThing answered without a thingName")
    return ProvisionResult(
        thing_name=thing,
        certificate_id=str(created.get("certificateId", "")),
        certificate_pem=str(created["certificatePem"]),
        private_key_pem=key_pem,
        device_configuration=dict(registered.get("deviceConfiguration") or {}),
    )


def write_credentials(
    result: ProvisionResult, directory: Path, ca_file: Path | None = None
) -> tuple[Path, Path]:
    """Write ``<thing>.pem`` and ``<thing>.key`` (mode 0600) into ``directory``, and a copy of
    ``ca_file`` as ``ca.pem`` beside them (unless it is that file already): the device commands
    find all three in one ``--certs-dir``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{result.thing_name}.pem"
    key_path = directory / f"{result.thing_name}.key"
    cert_path.write_text(result.certificate_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(result.private_key_pem)
    os.chmod(key_path, 0o600)
    if ca_file is not None:
        ca_copy = directory / "ca.pem"
        if not (ca_copy.exists() and ca_copy.samefile(ca_file)):
            ca_copy.write_bytes(ca_file.read_bytes())
    return cert_path, key_path
