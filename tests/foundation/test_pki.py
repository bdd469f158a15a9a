"""The platform CA: created once, reused, signs client certificates and verified CSRs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lantern.pki import CertificateAuthority, KeyType, PKIError, certificate_id, load_csr


def _csr(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_created_once_then_reused_with_private_files(tmp_path: Path) -> None:
    ca, created = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert created
    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / "ca" / name).stat().st_mode) == 0o600
    again, created_again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert not created_again
    assert again.certificate == ca.certificate
    assert isinstance(ca.certificate.public_key(), ec.EllipticCurvePublicKey)


def test_server_certificate_names(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path, ["mqtt.example.org"])
    cert = x509.load_pem_x509_certificate(ca.server_cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "mqtt.example.org"} <= set(san.get_values_for_type(x509.DNSName))
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # a new name later re-issues the server certificate
    assert ca.ensure_server_certificate(["localhost", "127.0.0.1", "other.example.org"])


def test_issue_and_verify(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path)
    issued = ca.issue("dev-1")
    assert issued.private_key_pem and "PRIVATE KEY" in issued.private_key_pem
    assert len(issued.certificate_id) == 64
    assert issued.certificate_id == certificate_id(issued.certificate)
    assert isinstance(issued.certificate.public_key(), rsa.RSAPublicKey)
    assert ca.verify_issued(issued.certificate)
    other, _ = CertificateAuthority.load_or_create(tmp_path / "other")
    assert not other.verify_issued(issued.certificate)
    ec_issued = ca.issue("dev-2", KeyType.EC_P256)
    assert isinstance(ec_issued.certificate.public_key(), ec.EllipticCurvePublicKey)


def test_csr_signed_without_private_key(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path)
    issued = ca.sign_csr(load_csr(_csr(ec.generate_private_key(ec.SECP256R1()))))
    assert issued.private_key_pem is None
    assert ca.verify_issued(issued.certificate)


def test_bad_csrs_are_refused() -> None:
    with pytest.raises(PKIError, match="not a valid PEM CSR"):
        load_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(PKIError, match="too weak"):
        load_csr(_csr(weak))


def test_half_a_ca_is_an_error(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(PKIError, match="half of the CA"):
        CertificateAuthority.load_or_create(tmp_path)
