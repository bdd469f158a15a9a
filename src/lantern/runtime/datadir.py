"""The data directory: created on first run, reused after. Holds everything Lantern keeps."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from lantern.security import tokens_equal

__all__ = ["ADMIN_TOKEN_FILE", "DataDir", "tokens_equal"]

ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def admin_token_file(self) -> Path:
        return self.root / ADMIN_TOKEN_FILE

    def ensure(self) -> bool:
        """Create the directory tree; True when it did not exist before."""
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.files_dir.mkdir(exist_ok=True)
        return created

    def admin_token(self) -> str:
        """The admin bearer token, created (mode 0600) on first use."""
        path = self.admin_token_file
        if path.exists():
            return path.read_text().strip()
        token = "lat_" + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token
