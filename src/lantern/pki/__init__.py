"""The platform's public-key infrastructure: its CA, certificates it issues, fingerprints.

Nothing here knows about MQTT. Private keys of devices are returned to the caller and never
kept; only the CA's own key and the server key live in the data directory (mode 0600).
"""

from __future__ import annotations

from lantern.pki.ca import CertificateAuthority, IssuedCertificate
from lantern.pki.certs import (
    KeyType,
    PKIError,
    PrivateKey,
    certificate_id,
    generate_private_key,
    load_certificate,
    load_csr,
    private_key_pem,
)

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "KeyType",
    "PKIError",
    "PrivateKey",
    "certificate_id",
    "generate_private_key",
    "load_certificate",
    "load_csr",
    "private_key_pem",
]
