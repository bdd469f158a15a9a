"""A node's identity in the cluster: ``cluster.node_id`` when set, else generated once and kept
in the data directory (``node-id``), so a restarted node is the same node."""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

__all__ = ["NODE_ID_FILE", "node_id"]

NODE_ID_FILE = "node-id"
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _generated() -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:40].strip("-")
    return f"{host or 'node'}-{secrets.token_hex(3)}"


def node_id(configured: str | None, data_dir: Path) -> str:
    """``configured`` if given, else the id kept in ``data_dir`` (created on first use)."""
    if configured:
        return configured
    path = data_dir / NODE_ID_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if _VALID.match(kept):
        return kept
    new = _generated()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new + "\n")
    os.replace(tmp, path)
    return new
