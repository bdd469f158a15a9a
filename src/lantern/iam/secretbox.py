"""Sealing access-key secrets with AES-256-GCM.

SigV4 verification needs the secret itself, so a hash will not do: the database holds
``v1:<base64(nonce || ciphertext+tag)>``, sealed under a 32-byte key that never enters the
database, with the access key id as associated data (a sealed secret copied onto another key's
row does not open).

Where the key comes from is a :class:`KeySource`. One machine: :class:`FileKeySource`, the file
``access-keys.key`` in the data directory (created 0600 by ``lantern serve`` or the first
``lantern access-keys`` command). On a cluster the file is part of the shared platform material
(``lantern.runtime.cluster_material``): sealed under the cluster secret in PostgreSQL and written
into every node's data directory, so every node opens the same rows.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lantern.errors import LanternError

__all__ = [
    "KEY_FILE",
    "FileKeySource",
    "KeySource",
    "SecretBox",
    "SecretBoxError",
    "data_dir_box",
]

KEY_FILE = "access-keys.key"
_VERSION = "v1"
_NONCE = 12


class SecretBoxError(LanternError):
    """A sealed secret cannot be opened (wrong key file, altered row) or the key is unusable."""


class KeySource(Protocol):
    def key(self) -> bytes:
        """The 32-byte sealing key."""
        ...


class FileKeySource:
    """The key in ``path``: 32 random bytes, hex, created (mode 0600, exclusively) on first
    use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            self._key = self._load_or_create()
        return self._key

    def _load_or_create(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._read()
        with os.fdopen(fd, "w") as f:
            key = secrets.token_bytes(32)
            f.write(key.hex() + "\n")
        return key

    def _read(self) -> bytes:
        try:
            key = bytes.fromhex(self.path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise SecretBoxError(
                f"cannot read the access-key sealing key {self.path}: {exc}"
            ) from None
        if len(key) != 32:
            raise SecretBoxError(f"{self.path} must hold 32 bytes in hex (64 characters)")
        return key


class SecretBox:
    """Seals and opens access-key secrets (see the module docstring)."""

    def __init__(self, source: KeySource) -> None:
        self.source = source

    def seal(self, key_id: str, secret: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = AESGCM(self.source.key()).encrypt(nonce, secret.encode(), key_id.encode())
        return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, key_id: str, sealed: str) -> str:
        version, _, data = sealed.partition(":")
        if version != _VERSION:
            raise SecretBoxError(f"access key {key_id}: unknown sealing version {version!r}")
        try:
            raw = base64.b64decode(data, validate=True)
            plain = AESGCM(self.source.key()).decrypt(raw[:_NONCE], raw[_NONCE:], key_id.encode())
        except (binascii.Error, InvalidTag, ValueError):
            raise SecretBoxError(
                f"access key {key_id}: the secret does not open with this sealing key "
                f"(was {KEY_FILE} replaced?); create a new access key"
            ) from None
        return plain.decode()


def data_dir_box(data_dir: Path) -> SecretBox:
    """The box of one machine: the key file ``access-keys.key`` in ``data_dir``."""
    return SecretBox(FileKeySource(data_dir / KEY_FILE))
