"""The shared platform material, sealed for the database and opened again with the secret.

Every value is encrypted with AES-256-GCM under a key derived with scrypt (N=2^15, r=8, p=1)
from the operator's ``cluster.secret`` and a random salt stored next to it. The value's name is
the associated data, so a sealed value cannot be swapped for another one's. Without the secret
the rows reveal nothing but names and lengths; a wrong secret fails the authentication tag of
every value and is refused as such.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from lantern.errors import ConfigError
from lantern.store.cluster import SealedSecret

__all__ = ["KDF", "WrongClusterSecret", "open_sealed", "seal"]

KDF = "scrypt-n32768-r8-p1"
_PARAMS = {KDF: (2**15, 8, 1)}
_AAD_PREFIX = b"lantern-cluster-material:"


class WrongClusterSecret(ConfigError):
    """``cluster.secret`` is not the secret the cluster's material was sealed with."""


def _key(secret: str, salt: bytes, kdf: str) -> bytes:
    try:
        n, r, p = _PARAMS[kdf]
    except KeyError:
        raise ConfigError(
            f"the cluster's shared material was sealed with {kdf!r}, which this version of "
            "Lantern does not know: upgrade this node to the version the others run"
        ) from None
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret.encode())


def seal(values: Mapping[str, bytes], secret: str) -> list[SealedSecret]:
    """Encrypt each value (one salt, one derived key, a fresh nonce per value)."""
    salt = os.urandom(16)
    aead = AESGCM(_key(secret, salt, KDF))
    sealed = []
    for name, value in values.items():
        nonce = os.urandom(12)
        ciphertext = aead.encrypt(nonce, value, _AAD_PREFIX + name.encode())
        sealed.append(SealedSecret(name, KDF, salt, nonce, ciphertext))
    return sealed


def open_sealed(sealed: Sequence[SealedSecret], secret: str) -> dict[str, bytes]:
    """Decrypt every value; :class:`WrongClusterSecret` when the secret does not fit."""
    keys: dict[tuple[str, bytes], AESGCM] = {}
    values: dict[str, bytes] = {}
    for item in sealed:
        aead = keys.get((item.kdf, item.salt))
        if aead is None:
            aead = keys[(item.kdf, item.salt)] = AESGCM(_key(secret, item.salt, item.kdf))
        try:
            values[item.name] = aead.decrypt(
                item.nonce, item.ciphertext, _AAD_PREFIX + item.name.encode()
            )
        except InvalidTag:
            raise WrongClusterSecret(
                "cluster.secret (LANTERN_CLUSTER__SECRET) is not the secret this cluster was "
                "formed with: the shared CA and keys in PostgreSQL cannot be decrypted with it. "
                "Give this node the same secret as the other nodes."
            ) from None
    return values
