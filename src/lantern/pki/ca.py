"""The platform CA: created once in the data directory, then used to sign every certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lantern.pki.certs import (
    KeyType,
    PKIError,
    PrivateKey,
    certificate_id,
    certificate_pem,
    check_key_strength,
    generate_private_key,
    private_key_pem,
)

CA_DAYS = 3650 * 2
SERVER_DAYS = 825
DEVICE_DAYS = 3650 * 3
_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate the CA signed, with its private key when the CA generated it."""

    certificate: x509.Certificate
    certificate_id: str
    certificate_pem: str
    private_key_pem: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret with mode 0600 from the start (no window where others may read it)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _san_entries(names: list[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


class CertificateAuthority:
    """The root CA (ECDSA P-256) and the server certificate, kept in ``directory``.

    Files (all mode 0600, the directory 0700): ``ca.pem`` (what devices trust), ``ca.key``,
    ``server.pem`` and ``server.key``.
    """

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.directory = directory
        self._key = key
        self.certificate = cert

    # -- files -------------------------------------------------------------------------------
    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert_file(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_file(self) -> Path:
        return self.directory / "server.key"

    @classmethod
    def load_or_create(
        cls, directory: Path, server_names: list[str] | None = None
    ) -> tuple[CertificateAuthority, bool]:
        """Load the CA from ``directory`` or create it; ensure a server certificate covering
        ``localhost``, ``127.0.0.1`` and ``server_names``. Returns (ca, created)."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path, cert_path = directory / "ca.key", directory / "ca.pem"
        created = False
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PKIError(f"{key_path} is not an EC private key")
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        elif key_path.exists() or cert_path.exists():
            raise PKIError(
                f"{directory} holds only half of the CA (ca.key and ca.pem go together); "
                "restore the missing file or move the directory away to create a new CA"
            )
        else:
            key, cert = cls._new_root()
            _write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            created = True
        ca = cls(directory, key, cert)
        ca.ensure_server_certificate(["localhost", "127.0.0.1", *(server_names or [])])
        return ca, created

    @staticmethod
    def _new_root() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lantern"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Lantern Root CA"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    # -- signing -----------------------------------------------------------------------------
    def _sign(
        self,
        subject: x509.Name,
        public_key: object,
        days: float,
        *,
        server_names: list[str] | None = None,
    ) -> x509.Certificate:
        check_key_strength(public_key)
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_san_entries(server_names)), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        return builder.sign(self._key, hashes.SHA256())

    def issue(
        self,
        common_name: str,
        key_type: KeyType = KeyType.RSA_2048,
        days: float = DEVICE_DAYS,
        *,
        key: PrivateKey | None = None,
    ) -> IssuedCertificate:
        """A client certificate and its key pair (CreateKeysAndCertificate): ``key`` when given
        (made ahead, see :mod:`lantern.provisioning.keypool`), else a new key of ``key_type``."""
        if key is None:
            key = generate_private_key(key_type)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = self._sign(subject, key.public_key(), days)
        return IssuedCertificate(
            cert, certificate_id(cert), certificate_pem(cert), private_key_pem(key)
        )

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        common_name: str | None = None,
        days: float = DEVICE_DAYS,
    ) -> IssuedCertificate:
        """Sign a verified CSR (see :func:`lantern.pki.load_csr`) as a client certificate."""
        if common_name is None:
            attrs = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            common_name = str(attrs[0].value) if attrs else "device"
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = self._sign(subject, csr.public_key(), days)
        return IssuedCertificate(cert, certificate_id(cert), certificate_pem(cert), None)

    def ensure_server_certificate(self, names: list[str]) -> bool:
        """(Re)issue the server certificate if it is missing, expiring, not ours, or lacks a name.
        Returns True when a new one was written."""
        wanted = list(dict.fromkeys(names))
        if self.server_cert_file.exists() and self.server_key_file.exists():
            cert = x509.load_pem_x509_certificate(self.server_cert_file.read_bytes())
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
                    str(v) for v in san.get_values_for_type(x509.IPAddress)
                }
            except x509.ExtensionNotFound:
                have = set()
            fresh = cert.not_valid_after_utc - _now() > dt.timedelta(days=30)
            if set(wanted) <= have and fresh and cert.issuer == self.certificate.subject:
                return False
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])])
        cert = self._sign(subject, key.public_key(), SERVER_DAYS, server_names=wanted)
        _write_private(
            self.server_key_file,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write_private(self.server_cert_file, cert.public_bytes(serialization.Encoding.PEM))
        return True

    def verify_issued(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` was signed by this CA and is within its validity period."""
        if cert.issuer != self.certificate.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        now = _now()
        return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
