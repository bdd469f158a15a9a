"""Shared platform material of a cluster: the CA, the link-signing key, the admin token and
the push address key and the access-key sealing key, the same on every node without copying
private keys between machines.

Under a PostgreSQL advisory lock (nodes starting at once on an empty database take turns):

* the first node creates the material in its data directory as a lone server would (or keeps
  what its data directory already holds), seals every file with the cluster secret
  (:mod:`lantern.cluster.secrets`) and stores it in ``cluster_secrets``;
* every later node opens the sealed values and writes them into its own data directory (files
  0600, as a lone server keeps them), so ``lantern`` commands run on that machine use them too.

Each node then issues its own server certificate from the shared CA for its ``server_names``.
A data directory that already holds a *different* CA belongs to another installation: the node
refuses to start rather than overwrite it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from lantern.cluster.secrets import open_sealed, seal
from lantern.errors import ConfigError
from lantern.iam.secretbox import KEY_FILE as ACCESS_KEYS_KEY_FILE
from lantern.iam.secretbox import FileKeySource
from lantern.pki import CertificateAuthority
from lantern.runtime.datadir import DataDir
from lantern.runtime.push import ADDRESS_KEY_FILE, address_key
from lantern.settings import Settings
from lantern.store import Database
from lantern.store import cluster as repo
from lantern.store.signing import SIGNING_KEY_FILE, load_or_create_signing_key

__all__ = ["material_files", "share_platform_material"]

log = logging.getLogger("lantern.cluster")


def material_files(data: DataDir) -> dict[str, Path]:
    """Every secret the data directory holds that all nodes must share, by name."""
    return {
        "ca.key": data.ca_dir / "ca.key",
        "ca.pem": data.ca_dir / "ca.pem",
        "signing.key": data.root / SIGNING_KEY_FILE,
        "admin-token": data.admin_token_file,
        "push-address.key": data.root / ADDRESS_KEY_FILE,
        "access-keys.key": data.root / ACCESS_KEYS_KEY_FILE,
    }


def _create_local(settings: Settings, data: DataDir) -> None:
    CertificateAuthority.load_or_create(data.ca_dir, settings.server_names)
    load_or_create_signing_key(data.root)
    data.admin_token()
    address_key(data.root)
    FileKeySource(data.root / ACCESS_KEYS_KEY_FILE).key()


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.replace(tmp, path)


def _install(data: DataDir, values: dict[str, bytes]) -> list[str]:
    """Write the cluster's values into the data directory; returns the names of material this
    version has that the cluster does not yet (a cluster formed by an older version)."""
    files = material_files(data)
    missing = sorted(set(files) - set(values))
    if "ca.pem" in missing or "ca.key" in missing:
        raise ConfigError("the cluster's shared material in PostgreSQL has no CA: it is damaged")
    ca_pem = files["ca.pem"]
    if ca_pem.exists() and ca_pem.read_bytes() != values["ca.pem"]:
        raise ConfigError(
            f"the data directory {data.root} holds a CA ({ca_pem}) different from the "
            "cluster's: it belongs to another Lantern installation. Start this node with an "
            "empty data directory (or move that one away) to join the cluster"
        )
    for name, path in files.items():
        if name in values and (not path.exists() or path.read_bytes() != values[name]):
            _write_private(path, values[name])
    return missing


async def share_platform_material(settings: Settings, data: DataDir, db: Database) -> str:
    """Form the cluster's material or take it from the database; returns what happened
    (``"formed"`` or ``"joined"``)."""
    secret_setting = settings.cluster.secret
    assert secret_setting is not None, "check_cluster_settings requires the secret"
    secret = secret_setting.get_secret_value()
    async with db.transaction() as conn:
        await repo.lock_secrets(conn)
        sealed = await repo.read_secrets(conn)
        if sealed:
            missing = _install(data, open_sealed(sealed, secret))
            if missing:
                # Material added by a newer version: the first node running it creates the
                # missing items (only files not there yet) and shares them, under the lock.
                _create_local(settings, data)
                files = material_files(data)
                added = {name: files[name].read_bytes() for name in missing}
                await repo.insert_secrets(conn, seal(added, secret), time.time())
                log.info("cluster: shared material added: %s", ", ".join(missing))
            log.info("cluster: shared CA and keys loaded from the database")
            return "joined"
        _create_local(settings, data)
        values = {name: path.read_bytes() for name, path in material_files(data).items()}
        await repo.insert_secrets(conn, seal(values, secret), time.time())
    log.info("cluster: formed; this node's CA and keys are now shared (encrypted) in the database")
    return "formed"
