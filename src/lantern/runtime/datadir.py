"""The data directory: created on first run, reused after. Holds everything Lantern keeps.

Everything in it is private to the user running Lantern: directories 0700, files 0600.
``lantern serve`` sets umask 077 before creating anything, and :meth:`DataDir.tighten` removes
group and other permissions from what an older version (or a copy) left behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from lantern.security import tokens_equal

__all__ = ["ADMIN_TOKEN_FILE", "DataDir", "tokens_equal"]

ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret
#: Permission bits no file or directory in the data directory keeps.
SHARED_BITS = 0o077

log = logging.getLogger(__name__)


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
        self.files_dir.mkdir(mode=0o700, exist_ok=True)
        return created

    def tighten(self) -> int:
        """Remove group/other permissions from every file and directory under the root (not
        following symbolic links: where they point is the operator's choice). Returns how many
        entries changed."""
        changed = 0
        for top, dirs, files in os.walk(self.root):
            for name in (*dirs, *files):
                path = os.path.join(top, name)
                try:
                    mode = os.lstat(path).st_mode
                    if stat.S_ISLNK(mode) or not mode & SHARED_BITS:
                        continue
                    os.chmod(path, stat.S_IMODE(mode) & ~SHARED_BITS)
                except FileNotFoundError:
                    continue  # removed meanwhile (a finished upload's temporary file)
                changed += 1
        if changed:
            log.info("data directory: removed group/other permissions from %d entries", changed)
        return changed

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
