"""Access data: policies (AWS-like documents), their attachment to certificates, and MQTT user
accounts for the plain TCP / WebSocket listeners.

Password hashes are opaque strings here; hashing and verification live in the gateway.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.registry.columns import (
    POLICY_COLUMNS,
    USER_COLUMNS,
    policy_record,
    user_record,
    values_of,
)
from lantern.store.registry.records import MqttUserRecord, PolicyRecord
from lantern.store.schema.registry import certificate_policies, mqtt_users, policies
from lantern.store.sqlite.prepared import Prepared

__all__ = [
    "attach_policy",
    "attach_policy_sync",
    "certificate_policy_names",
    "certificate_policy_names_sync",
    "connection_policies_sync",
    "delete_mqtt_user",
    "delete_policy",
    "get_mqtt_user",
    "get_mqtt_user_sync",
    "get_policy",
    "get_policy_sync",
    "insert_mqtt_user",
    "list_mqtt_users",
    "list_mqtt_users_sync",
    "list_policies",
    "list_policies_sync",
    "project_policies",
    "update_mqtt_user",
    "upsert_policy",
    "upsert_policy_sync",
]

_POLICY_BY_NAME = Prepared(
    sa.select(*POLICY_COLUMNS).where(policies.c.name == sa.bindparam("p_name"))
)
_PROJECT_WIDE = Prepared(
    sa.select(*POLICY_COLUMNS)
    .where(policies.c.project == sa.bindparam("p_project"))
    .where(policies.c.project_wide.is_(True))
    .order_by(policies.c.name)
)
_ATTACHED = Prepared(
    sa.select(*POLICY_COLUMNS)
    .join(certificate_policies, certificate_policies.c.policy_name == policies.c.name)
    .where(certificate_policies.c.certificate_id == sa.bindparam("p_cert"))
    .order_by(policies.c.name)
)
_IS_ATTACHED = Prepared(
    sa.select(certificate_policies.c.policy_name)
    .where(certificate_policies.c.certificate_id == sa.bindparam("p_cert"))
    .where(certificate_policies.c.policy_name == sa.bindparam("p_policy"))
)
_ATTACH = Prepared(
    sa.insert(certificate_policies).values(
        certificate_id=sa.bindparam("p_cert"), policy_name=sa.bindparam("p_policy")
    )
)
_USER_BY_NAME = Prepared(
    sa.select(*USER_COLUMNS).where(mqtt_users.c.username == sa.bindparam("p_name"))
)


# -- policies ----------------------------------------------------------------------------------
def get_policy_sync(conn: Connection, name: str) -> PolicyRecord | None:
    row = _POLICY_BY_NAME.first(conn, {"p_name": name})
    return None if row is None else policy_record(row)


async def get_policy(conn: AsyncConnection, name: str) -> PolicyRecord | None:
    return await conn.run_sync(get_policy_sync, name)


def list_policies_sync(conn: Connection, project: str | None = "default") -> list[PolicyRecord]:
    query = sa.select(*POLICY_COLUMNS).order_by(policies.c.name)
    if project is not None:
        query = query.where(policies.c.project == project)
    return [policy_record(r) for r in conn.execute(query)]


async def list_policies(
    conn: AsyncConnection, project: str | None = "default"
) -> list[PolicyRecord]:
    return await conn.run_sync(list_policies_sync, project)


async def project_policies(conn: AsyncConnection, project: str) -> list[PolicyRecord]:
    """Policies that apply to every device connection of ``project``."""
    rows = await conn.run_sync(lambda c: _PROJECT_WIDE.rows(c, {"p_project": project}))
    return [policy_record(r) for r in rows]


def connection_policies_sync(
    conn: Connection, project: str, certificate_id: str
) -> list[PolicyRecord]:
    """The project-wide policies of ``project`` (by name), then those attached to the
    certificate (by name): what a device connection is granted beyond the built-in policy."""
    wide = _PROJECT_WIDE.rows(conn, {"p_project": project})
    attached = _ATTACHED.rows(conn, {"p_cert": certificate_id})
    return [policy_record(r) for r in (*wide, *attached)]


def upsert_policy_sync(conn: Connection, record: PolicyRecord) -> None:
    """Create the policy, or replace its document and scope if the name exists."""
    if get_policy_sync(conn, record.name) is None:
        conn.execute(sa.insert(policies), values_of(record))
        return
    conn.execute(
        sa.update(policies)
        .where(policies.c.name == record.name)
        .values(
            document=record.document,
            project_wide=record.project_wide,
            updated_at=record.updated_at,
        )
    )


async def upsert_policy(conn: AsyncConnection, record: PolicyRecord) -> None:
    """Create the policy, or replace its document and scope if the name exists."""
    await conn.run_sync(upsert_policy_sync, record)


async def delete_policy(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(sa.delete(policies).where(policies.c.name == name))
    return bool(result.rowcount)


def attach_policy_sync(conn: Connection, certificate_id: str, policy_name: str) -> None:
    """Attach a policy to a certificate (idempotent)."""
    params = {"p_cert": certificate_id, "p_policy": policy_name}
    if _IS_ATTACHED.first(conn, params) is None:
        _ATTACH.run(conn, params)


async def attach_policy(conn: AsyncConnection, certificate_id: str, policy_name: str) -> None:
    """Attach a policy to a certificate (idempotent)."""
    await conn.run_sync(attach_policy_sync, certificate_id, policy_name)


def certificate_policy_names_sync(conn: Connection, certificate_id: str) -> list[str]:
    query = (
        sa.select(certificate_policies.c.policy_name)
        .where(certificate_policies.c.certificate_id == certificate_id)
        .order_by(certificate_policies.c.policy_name)
    )
    return [name for (name,) in conn.execute(query)]


async def certificate_policy_names(conn: AsyncConnection, certificate_id: str) -> list[str]:
    return await conn.run_sync(certificate_policy_names_sync, certificate_id)


# -- MQTT users --------------------------------------------------------------------------------
def get_mqtt_user_sync(conn: Connection, username: str) -> MqttUserRecord | None:
    row = _USER_BY_NAME.first(conn, {"p_name": username})
    return None if row is None else user_record(row)


async def get_mqtt_user(conn: AsyncConnection, username: str) -> MqttUserRecord | None:
    return await conn.run_sync(get_mqtt_user_sync, username)


def list_mqtt_users_sync(conn: Connection, project: str | None = "default") -> list[MqttUserRecord]:
    query = sa.select(*USER_COLUMNS).order_by(mqtt_users.c.username)
    if project is not None:
        query = query.where(mqtt_users.c.project == project)
    return [user_record(r) for r in conn.execute(query)]


async def list_mqtt_users(
    conn: AsyncConnection, project: str | None = "default"
) -> list[MqttUserRecord]:
    return await conn.run_sync(list_mqtt_users_sync, project)


async def insert_mqtt_user(conn: AsyncConnection, record: MqttUserRecord) -> None:
    await conn.execute(sa.insert(mqtt_users).values(**values_of(record)))


async def update_mqtt_user(conn: AsyncConnection, username: str, **values: Any) -> bool:
    result = await conn.execute(
        sa.update(mqtt_users).where(mqtt_users.c.username == username).values(**values)
    )
    return bool(result.rowcount)


async def delete_mqtt_user(conn: AsyncConnection, username: str) -> bool:
    result = await conn.execute(sa.delete(mqtt_users).where(mqtt_users.c.username == username))
    return bool(result.rowcount)


async def detach_policy(conn: AsyncConnection, certificate_id: str, policy_name: str) -> bool:
    """Detach a policy from a certificate; True if it was attached."""
    result = await conn.execute(
        sa.delete(certificate_policies)
        .where(certificate_policies.c.certificate_id == certificate_id)
        .where(certificate_policies.c.policy_name == policy_name)
    )
    return bool(result.rowcount)


async def policy_targets(conn: AsyncConnection, policy_name: str) -> list[str]:
    """What uses a policy: the ids of the certificates it is attached to and ``user:<name>`` for
    each MQTT user."""
    certs = await conn.execute(
        sa.select(certificate_policies.c.certificate_id)
        .where(certificate_policies.c.policy_name == policy_name)
        .order_by(certificate_policies.c.certificate_id)
    )
    users = await conn.execute(
        sa.select(mqtt_users.c.username).where(mqtt_users.c.policy_name == policy_name)
    )
    return [c for (c,) in certs] + [f"user:{u}" for (u,) in users]
