"""Small, pure helpers over X.509 objects: keys, fingerprints, parsing with clear errors."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lantern.errors import LanternError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Minimum strengths accepted from a device's CSR.
MIN_RSA_BITS = 2048
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


class PKIError(LanternError):
    """A certificate, key or CSR is unusable; the message says why."""


class KeyType(StrEnum):
    RSA_2048 = "rsa-2048"
    EC_P256 = "ec-p256"


def generate_private_key(key_type: KeyType = KeyType.RSA_2048) -> PrivateKey:
    """A fresh private key of the given type."""
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: PrivateKey) -> str:
    """PKCS#8 PEM, unencrypted (for handing to a device, or writing with mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def certificate_id(cert: x509.Certificate | bytes) -> str:
    """AWS-style certificate id: SHA-256 of the DER encoding, 64 lowercase hex characters."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_certificate(data: str | bytes) -> x509.Certificate:
    """Parse a PEM or DER certificate, raising :class:`PKIError` on anything else."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise PKIError(f"not a valid X.509 certificate: {exc}") from None


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and check its signature and key strength."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise PKIError(f"certificateSigningRequest is not a valid PEM CSR: {exc}") from None
    if not csr.is_signature_valid:
        raise PKIError("certificateSigningRequest has an invalid signature")
    check_key_strength(csr.public_key())
    return csr


def check_key_strength(public_key: object) -> None:
    """Refuse RSA keys under 2048 bits and curves other than P-256/384/521."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise PKIError(
                f"RSA key of {public_key.key_size} bits is too weak (minimum {MIN_RSA_BITS})"
            )
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ALLOWED_CURVES):
            raise PKIError(f"elliptic curve {public_key.curve.name} is not allowed")
        return
    raise PKIError(f"key type {type(public_key).__name__} is not allowed (use RSA or ECDSA)")


def sha256_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()
