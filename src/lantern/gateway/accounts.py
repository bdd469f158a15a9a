"""Operator actions on access data: policies and MQTT user accounts (for the plain TCP and
WebSocket listeners). Validate first, change nothing on error; raise :class:`AccountError`
with a message that says how to fix it.

Each change is recorded in the audit log in its own transaction (``policy.put``,
``mqtt_user.create``, ``mqtt_user.update_password``, ``mqtt_user.delete``); passwords and their
hashes never are.

The read side (:func:`list_mqtt_users`, :func:`list_policies`, :func:`get_policy`) is shared by
the command line and anything else that shows accounts: one statement each."""

from __future__ import annotations

import re
import time
from typing import Any

from lantern.audit import audited
from lantern.gateway.errors import GatewayError, PolicyError
from lantern.gateway.passwords import hash_password
from lantern.gateway.policy import validate_policy_document
from lantern.store import Database
from lantern.store.registry import MqttUserRecord, PolicyRecord
from lantern.store.registry import access as acc

__all__ = [
    "AccountError",
    "MqttUserRecord",
    "PolicyRecord",
    "create_mqtt_user",
    "delete_mqtt_user",
    "get_policy",
    "list_mqtt_users",
    "list_policies",
    "put_policy",
    "set_mqtt_user_password",
]

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
POLICY_NAME_RE = re.compile(r"^[A-Za-z0-9_.,@=+-]{1,128}$")
MIN_PASSWORD = 12


class AccountError(GatewayError):
    """An operator request on policies or users cannot be done; the message says why."""


async def list_mqtt_users(db: Database, project: str | None = None) -> list[MqttUserRecord]:
    """MQTT users by name (``project=None``: every project)."""
    async with db.connect() as conn:
        return await acc.list_mqtt_users(conn, project)


async def list_policies(db: Database, project: str | None = None) -> list[PolicyRecord]:
    """Policies by name (``project=None``: every project)."""
    async with db.connect() as conn:
        return await acc.list_policies(conn, project)


async def get_policy(db: Database, name: str) -> PolicyRecord | None:
    async with db.connect() as conn:
        return await acc.get_policy(conn, name)


async def put_policy(
    db: Database,
    name: str,
    document: Any,
    *,
    project: str = "default",
    project_wide: bool = False,
) -> PolicyRecord:
    """Create or replace a policy. A project-wide policy applies to every device of the project
    (on their next connection)."""
    async with audited(db, "policy.put", name, project_wide=project_wide) as act:
        if not POLICY_NAME_RE.match(name):
            raise AccountError(f"policy name {name!r} is invalid (1-128 of A-Z a-z 0-9 _.,@=+-)")
        try:
            validate_policy_document(document)
        except PolicyError as exc:
            raise AccountError(f"invalid policy {name}: {exc}") from None
        now = time.time()
        record = PolicyRecord(name, project, document, project_wide, now, now)
        async with db.transaction() as conn:
            existed = await acc.get_policy(conn, name) is not None
            await acc.upsert_policy(conn, record)
            await act.record(conn, replaced=existed)
    return record


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")


async def create_mqtt_user(
    db: Database,
    username: str,
    password: str,
    *,
    policy_name: str | None = None,
    project: str = "default",
) -> MqttUserRecord:
    """Create a user with ``policy_name`` attached (none: the user may do nothing)."""
    async with audited(db, "mqtt_user.create", username, policy=policy_name) as act:
        if not USERNAME_RE.match(username):
            raise AccountError(f"username {username!r} is invalid (1-128 of A-Z a-z 0-9 _.@-)")
        _check_password(password)
        record = MqttUserRecord(
            username, project, hash_password(password), policy_name, time.time(), None
        )
        async with db.transaction() as conn:
            if await acc.get_mqtt_user(conn, username) is not None:
                raise AccountError(f"user {username} already exists")
            if policy_name is not None and await acc.get_policy(conn, policy_name) is None:
                raise AccountError(f"policy {policy_name} does not exist; create it first")
            await acc.insert_mqtt_user(conn, record)
            await act.record(conn)
    return record


async def set_mqtt_user_password(db: Database, username: str, password: str) -> None:
    """Replace a user's password (applies to its next connection)."""
    async with audited(db, "mqtt_user.update_password", username) as act:
        _check_password(password)
        async with db.transaction() as conn:
            hashed = hash_password(password)
            if not await acc.update_mqtt_user(conn, username, password_hash=hashed):
                raise AccountError(f"user {username} does not exist; see `lantern mqtt-users list`")
            await act.record(conn)


async def delete_mqtt_user(db: Database, username: str) -> None:
    """Delete a user (refused from its next connection on)."""
    async with audited(db, "mqtt_user.delete", username) as act, db.transaction() as conn:
        if not await acc.delete_mqtt_user(conn, username):
            raise AccountError(f"user {username} does not exist; see `lantern mqtt-users list`")
        await act.record(conn)
