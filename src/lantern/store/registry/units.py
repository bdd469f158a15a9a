"""The registry as the gateway and the provisioning service use it: the port
(:class:`RegistryUnitOfWork`, one transaction; :class:`RegistryUnits`, a way to run one) and its
implementation (:class:`RegistryUnit` over a synchronous connection; :class:`RegistryStore` over
the database's :class:`~lantern.store.transactions.Transactions`).

:meth:`RegistryUnits.write_each` is what a group-commit writer needs: many requests in ONE
transaction, each in a SAVEPOINT of its own (one that raises is rolled back alone and its
exception is its outcome); if the transaction cannot commit, it raises and nothing is stored. A
unique key violated by a concurrent writer (another process on PostgreSQL) becomes
:class:`~lantern.store.registry.records.RegistryConflict`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from lantern.store.registry import access, claims, devices
from lantern.store.registry.records import (
    CertificateRecord,
    ClaimRecord,
    MqttUserRecord,
    OwnershipTokenRecord,
    PolicyRecord,
    RegistryConflict,
    TemplateRecord,
    ThingRecord,
)
from lantern.store.transactions import Transactions, each_in_savepoint

__all__ = ["RegistryStore", "RegistryUnit", "RegistryUnitOfWork", "RegistryUnits"]

T = TypeVar("T")


class RegistryUnitOfWork(Protocol):
    """What the gateway and provisioning read and change of the registry in one transaction."""

    def certificate(self, certificate_id: str) -> CertificateRecord | None: ...

    def claim_of_certificate(self, certificate_id: str) -> ClaimRecord | None: ...

    def live_claim(self, claim_id: str, certificate_id: str) -> ClaimRecord | None:
        """The claim if it is not revoked and its certificate is ACTIVE, else None."""
        ...

    def claim_devices(self, claim_id: str) -> int:
        """How many things the claim registered (used ownership tokens)."""
        ...

    def thing(self, name: str) -> ThingRecord | None: ...

    def template(self, name: str) -> TemplateRecord | None: ...

    def token(self, token_hash: str) -> OwnershipTokenRecord | None: ...

    def policy(self, name: str) -> PolicyRecord | None: ...

    def connection_policies(self, project: str, certificate_id: str) -> list[PolicyRecord]:
        """The project's project-wide policies, then those attached to the certificate."""
        ...

    def mqtt_user(self, username: str) -> MqttUserRecord | None: ...

    def thing_names(self, created_since: float | None = None) -> set[str]:
        """Every thing's name, or those created at or after ``created_since``."""
        ...

    def disabled_certificates_since(self, since: float) -> list[str]:
        """Certificates made INACTIVE or REVOKED at or after ``since``."""
        ...

    def stale_pending_certificates(self, now: float) -> list[str]:
        """Unattached PENDING_ACTIVATION certificates whose every token expired unused."""
        ...

    def insert_certificate(self, record: CertificateRecord) -> None: ...

    def insert_token(self, record: OwnershipTokenRecord) -> None: ...

    def insert_thing(self, record: ThingRecord) -> None: ...

    def update_thing(self, name: str, **values: Any) -> None: ...

    def use_token(self, token_hash: str, now: float, thing_name: str) -> bool:
        """Consume an unused token; False if it was used already (nothing written)."""
        ...

    def set_certificate_status(
        self, certificate_id: str, status: str, now: float, thing_name: str | None = None
    ) -> bool: ...

    def attach_policy(self, certificate_id: str, policy_name: str) -> None: ...

    def upsert_policy(self, record: PolicyRecord) -> None: ...

    def delete_certificates(self, ids: Sequence[str]) -> int: ...


class RegistryUnits(Protocol):
    """Runs functions of a :class:`RegistryUnitOfWork` in transactions."""

    async def read(self, fn: Callable[[RegistryUnitOfWork], T]) -> T:
        """``fn``'s result, on committed data (nothing it changes is kept)."""
        ...

    async def write(self, fn: Callable[[RegistryUnitOfWork], T]) -> T:
        """``fn``'s result once its transaction committed; its exception (rolled back) else."""
        ...

    async def write_each(
        self, fns: Sequence[Callable[[RegistryUnitOfWork], Any]]
    ) -> list[Any | Exception]:
        """Every ``fn`` in a savepoint of ONE transaction: its result or its exception (it was
        rolled back alone), once the transaction committed. Raises if it could not commit
        (then nothing of any is stored)."""
        ...


class RegistryUnit:
    """:class:`RegistryUnitOfWork` in the transaction of a synchronous connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        return devices.get_certificate_sync(self.conn, certificate_id)

    def claim_of_certificate(self, certificate_id: str) -> ClaimRecord | None:
        return claims.get_claim_by_certificate_sync(self.conn, certificate_id)

    def live_claim(self, claim_id: str, certificate_id: str) -> ClaimRecord | None:
        return claims.live_claim_sync(self.conn, claim_id, certificate_id)

    def claim_devices(self, claim_id: str) -> int:
        return claims.count_claim_devices_sync(self.conn, claim_id)

    def thing(self, name: str) -> ThingRecord | None:
        return devices.get_thing_sync(self.conn, name)

    def template(self, name: str) -> TemplateRecord | None:
        return claims.get_template_sync(self.conn, name)

    def token(self, token_hash: str) -> OwnershipTokenRecord | None:
        return devices.get_token_sync(self.conn, token_hash)

    def policy(self, name: str) -> PolicyRecord | None:
        return access.get_policy_sync(self.conn, name)

    def connection_policies(self, project: str, certificate_id: str) -> list[PolicyRecord]:
        return access.connection_policies_sync(self.conn, project, certificate_id)

    def mqtt_user(self, username: str) -> MqttUserRecord | None:
        return access.get_mqtt_user_sync(self.conn, username)

    def thing_names(self, created_since: float | None = None) -> set[str]:
        return devices.thing_names_sync(self.conn, created_since)

    def disabled_certificates_since(self, since: float) -> list[str]:
        return devices.disabled_certificates_since(self.conn, since)

    def stale_pending_certificates(self, now: float) -> list[str]:
        return devices.stale_pending_certificates_sync(self.conn, now)

    def insert_certificate(self, record: CertificateRecord) -> None:
        devices.insert_certificate_sync(self.conn, record)

    def insert_token(self, record: OwnershipTokenRecord) -> None:
        devices.insert_token_sync(self.conn, record)

    def insert_thing(self, record: ThingRecord) -> None:
        devices.insert_thing_sync(self.conn, record)

    def update_thing(self, name: str, **values: Any) -> None:
        devices.update_thing_sync(self.conn, name, **values)

    def use_token(self, token_hash: str, now: float, thing_name: str) -> bool:
        return devices.mark_token_used_sync(self.conn, token_hash, now, thing_name)

    def set_certificate_status(
        self, certificate_id: str, status: str, now: float, thing_name: str | None = None
    ) -> bool:
        return devices.set_certificate_status_sync(
            self.conn, certificate_id, status, now, thing_name
        )

    def attach_policy(self, certificate_id: str, policy_name: str) -> None:
        access.attach_policy_sync(self.conn, certificate_id, policy_name)

    def upsert_policy(self, record: PolicyRecord) -> None:
        access.upsert_policy_sync(self.conn, record)

    def delete_certificates(self, ids: Sequence[str]) -> int:
        return devices.delete_certificates_sync(self.conn, ids)


def _run(conn: Connection, fn: Callable[[RegistryUnitOfWork], T]) -> T:
    try:
        return fn(RegistryUnit(conn))
    except (IntegrityError, sqlite3.IntegrityError) as exc:  # through SQLAlchemy, or Prepared
        raise RegistryConflict("a concurrent change conflicts with this one") from exc


class RegistryStore:
    """:class:`RegistryUnits` on the database's units of work (on a SQLite file, its writer
    thread; see :mod:`lantern.store.transactions`)."""

    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    async def read(self, fn: Callable[[RegistryUnitOfWork], T]) -> T:
        return await self._transactions.read(lambda conn: fn(RegistryUnit(conn)))

    async def write(self, fn: Callable[[RegistryUnitOfWork], T]) -> T:
        return await self._transactions.write(lambda conn: _run(conn, fn))

    async def write_each(
        self, fns: Sequence[Callable[[RegistryUnitOfWork], Any]]
    ) -> list[Any | Exception]:
        return await self._transactions.write(lambda conn: each_in_savepoint(conn, fns, _run))
