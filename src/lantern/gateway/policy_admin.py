"""Policy actions the AWS IoT control plane adds to ``lantern policies``: create (refused if the
name exists), delete (refused while attached), attach to and detach from certificates.

The documents are the policy engine's (:mod:`lantern.gateway.policy`); an attachment applies to
the certificate's next connection. Errors: :class:`PolicyNotFound`, :class:`PolicyConflict`,
:class:`~lantern.gateway.accounts.AccountError` for invalid input. Changes are audited
(``policy.create``, ``policy.delete``, ``policy.attach``, ``policy.detach``).
"""

from __future__ import annotations

from typing import Any

from lantern.audit import audited
from lantern.gateway.accounts import POLICY_NAME_RE, AccountError, put_policy
from lantern.gateway.errors import PolicyError
from lantern.gateway.policy import validate_policy_document
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.registry import PolicyRecord, access

__all__ = [
    "PolicyConflict",
    "PolicyNotFound",
    "attach_policy",
    "attached_policies",
    "create_policy",
    "delete_policy",
    "detach_policy",
]


class PolicyNotFound(AccountError):
    http_status = 404
    code = "NotFound"


class PolicyConflict(AccountError):
    http_status = 409
    code = "Conflict"


async def create_policy(db: Database, name: str, document: Any) -> PolicyRecord:
    """A new policy; :class:`PolicyConflict` if one has that name."""
    if not POLICY_NAME_RE.match(name):
        raise AccountError(f"policy name {name!r} is invalid (1-128 of A-Z a-z 0-9 _.,@=+-)")
    try:
        validate_policy_document(document)
    except PolicyError as exc:
        raise AccountError(f"invalid policy {name}: {exc}") from None
    async with db.connect() as conn:
        if await access.get_policy(conn, name) is not None:
            raise PolicyConflict(f"policy {name} already exists")
    return await put_policy(db, name, document)


async def delete_policy(db: Database, name: str) -> None:
    async with audited(db, "policy.delete", name) as act, db.transaction() as conn:
        if await access.get_policy(conn, name) is None:
            raise PolicyNotFound(f"policy {name} does not exist")
        users = await access.policy_targets(conn, name)
        if users:
            raise PolicyConflict(
                f"policy {name} is attached to {len(users)} certificate(s) or user(s); "
                "detach it first"
            )
        await access.delete_policy(conn, name)
        await act.record(conn)


async def attach_policy(db: Database, name: str, certificate_id: str) -> None:
    async with (
        audited(db, "policy.attach", name, certificate=certificate_id) as act,
        db.transaction() as conn,
    ):
        if await access.get_policy(conn, name) is None:
            raise PolicyNotFound(f"policy {name} does not exist")
        if await reg.get_certificate(conn, certificate_id) is None:
            raise PolicyNotFound(f"certificate {certificate_id} does not exist")
        await access.attach_policy(conn, certificate_id, name)
        await act.record(conn)


async def detach_policy(db: Database, name: str, certificate_id: str) -> None:
    async with (
        audited(db, "policy.detach", name, certificate=certificate_id) as act,
        db.transaction() as conn,
    ):
        if await access.get_policy(conn, name) is None:
            raise PolicyNotFound(f"policy {name} does not exist")
        if await reg.get_certificate(conn, certificate_id) is None:
            raise PolicyNotFound(f"certificate {certificate_id} does not exist")
        await access.detach_policy(conn, certificate_id, name)
        await act.record(conn)


async def attached_policies(db: Database, certificate_id: str) -> list[str]:
    """The names of the policies attached to a certificate; :class:`PolicyNotFound` if there
    is no such certificate."""
    async with db.connect() as conn:
        if await reg.get_certificate(conn, certificate_id) is None:
            raise PolicyNotFound(f"certificate {certificate_id} does not exist")
        return await access.certificate_policy_names(conn, certificate_id)
