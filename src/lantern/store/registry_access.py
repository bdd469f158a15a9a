"""Repository of access data: policies (AWS-like documents), their attachment to certificates,
and MQTT user accounts for the plain TCP / WebSocket listeners.

Password hashes are opaque strings here; hashing and verification live in the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.schema.registry import certificate_policies, mqtt_users, policies

__all__ = [
    "MqttUserRecord",
    "PolicyRecord",
    "attach_policy",
    "certificate_policy_names",
    "delete_mqtt_user",
    "delete_policy",
    "get_mqtt_user",
    "get_policy",
    "insert_mqtt_user",
    "list_mqtt_users",
    "list_policies",
    "project_policies",
    "update_mqtt_user",
    "upsert_policy",
]


@dataclass(frozen=True)
class PolicyRecord:
    name: str
    project: str
    document: dict[str, Any]
    project_wide: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class MqttUserRecord:
    username: str
    project: str
    password_hash: str
    policy_name: str | None
    created_at: float
    disabled_at: float | None


def policy_record(row: sa.Row[Any]) -> PolicyRecord:
    return PolicyRecord(
        name=row.name,
        project=row.project,
        document=dict(row.document),
        project_wide=bool(row.project_wide),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _user(row: sa.Row[Any]) -> MqttUserRecord:
    return MqttUserRecord(
        username=row.username,
        project=row.project,
        password_hash=row.password_hash,
        policy_name=row.policy_name,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


# -- policies ----------------------------------------------------------------------------------
def get_policy_sync(conn: Connection, name: str) -> PolicyRecord | None:
    row = conn.execute(sa.select(policies).where(policies.c.name == name)).first()
    return policy_record(row) if row else None


async def get_policy(conn: AsyncConnection, name: str) -> PolicyRecord | None:
    return await conn.run_sync(get_policy_sync, name)


async def list_policies(
    conn: AsyncConnection, project: str | None = "default"
) -> list[PolicyRecord]:
    query = sa.select(policies).order_by(policies.c.name)
    if project is not None:
        query = query.where(policies.c.project == project)
    return [policy_record(r) for r in (await conn.execute(query)).all()]


async def project_policies(conn: AsyncConnection, project: str) -> list[PolicyRecord]:
    """Policies that apply to every device connection of ``project``."""
    query = (
        sa.select(policies)
        .where(policies.c.project == project)
        .where(policies.c.project_wide.is_(True))
        .order_by(policies.c.name)
    )
    return [policy_record(r) for r in (await conn.execute(query)).all()]


def upsert_policy_sync(conn: Connection, record: PolicyRecord) -> None:
    """Create the policy, or replace its document and scope if the name exists."""
    if get_policy_sync(conn, record.name) is None:
        conn.execute(sa.insert(policies), record.__dict__)
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
    query = (
        sa.select(certificate_policies.c.policy_name)
        .where(certificate_policies.c.certificate_id == certificate_id)
        .where(certificate_policies.c.policy_name == policy_name)
    )
    if conn.execute(query).first() is None:
        conn.execute(
            sa.insert(certificate_policies),
            {"certificate_id": certificate_id, "policy_name": policy_name},
        )


async def attach_policy(conn: AsyncConnection, certificate_id: str, policy_name: str) -> None:
    """Attach a policy to a certificate (idempotent)."""
    await conn.run_sync(attach_policy_sync, certificate_id, policy_name)


async def certificate_policy_names(conn: AsyncConnection, certificate_id: str) -> list[str]:
    query = (
        sa.select(certificate_policies.c.policy_name)
        .where(certificate_policies.c.certificate_id == certificate_id)
        .order_by(certificate_policies.c.policy_name)
    )
    return [r.policy_name for r in (await conn.execute(query)).all()]


# -- MQTT users --------------------------------------------------------------------------------
async def get_mqtt_user(conn: AsyncConnection, username: str) -> MqttUserRecord | None:
    query = sa.select(mqtt_users).where(mqtt_users.c.username == username)
    row = (await conn.execute(query)).first()
    return _user(row) if row else None


async def list_mqtt_users(
    conn: AsyncConnection, project: str | None = "default"
) -> list[MqttUserRecord]:
    query = sa.select(mqtt_users).order_by(mqtt_users.c.username)
    if project is not None:
        query = query.where(mqtt_users.c.project == project)
    return [_user(r) for r in (await conn.execute(query)).all()]


async def insert_mqtt_user(conn: AsyncConnection, record: MqttUserRecord) -> None:
    await conn.execute(sa.insert(mqtt_users).values(**record.__dict__))


async def update_mqtt_user(conn: AsyncConnection, username: str, **values: Any) -> bool:
    result = await conn.execute(
        sa.update(mqtt_users).where(mqtt_users.c.username == username).values(**values)
    )
    return bool(result.rowcount)


async def delete_mqtt_user(conn: AsyncConnection, username: str) -> bool:
    result = await conn.execute(sa.delete(mqtt_users).where(mqtt_users.c.username == username))
    return bool(result.rowcount)
