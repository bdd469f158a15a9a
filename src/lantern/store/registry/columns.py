"""The registry's columns as every read selects them, and the one place rows become records.

JSON columns are selected as text (``CAST(... AS TEXT)``) and booleans as integers, so a row has
the same plain values whichever way it was read (``sqlite3`` through
:class:`~lantern.store.sqlite.prepared.Prepared`, SQLAlchemy on SQLite or on PostgreSQL, where
asyncpg would otherwise decode JSON itself); the record functions decode them. JSON written by a
prepared statement goes as its text through :func:`untyped` parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Integer, Table, Text, bindparam, cast, type_coerce
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import NullType

from lantern.store.registry.records import (
    CertificateRecord,
    ClaimRecord,
    MqttUserRecord,
    OwnershipTokenRecord,
    PolicyRecord,
    TemplateRecord,
    ThingRecord,
)
from lantern.store.schema.registry import (
    certificates,
    claims,
    mqtt_users,
    ownership_tokens,
    policies,
    provisioning_templates,
    things,
)

__all__ = [
    "CERTIFICATE_COLUMNS",
    "CLAIM_COLUMNS",
    "POLICY_COLUMNS",
    "TEMPLATE_COLUMNS",
    "THING_COLUMNS",
    "TOKEN_COLUMNS",
    "USER_COLUMNS",
    "certificate_record",
    "claim_record",
    "policy_record",
    "template_record",
    "thing_record",
    "token_record",
    "untyped",
    "user_record",
    "values_of",
]


def _text(column: Any) -> ColumnElement[str]:
    return cast(column, Text)


def _flag(column: Any) -> ColumnElement[int]:
    return type_coerce(column, Integer)


def untyped(name: str) -> Any:
    """A parameter SQLAlchemy does not convert, typed by the database from its column: JSON goes
    as its text (PostgreSQL parses it as json, SQLite stores the text), as Prepared requires."""
    return type_coerce(bindparam(name), NullType())


def _columns(
    record: type[Any], table: Table, json_columns: Sequence[str] = (), flags: Sequence[str] = ()
) -> tuple[ColumnElement[Any], ...]:
    out: list[ColumnElement[Any]] = []
    for f in fields(record):
        column: ColumnElement[Any] = table.c[f.name]
        if f.name in json_columns:
            column = _text(column)
        elif f.name in flags:
            column = _flag(column)
        out.append(column.label(f.name))
    return tuple(out)


# Column order is the records' field order: the record functions unpack rows by position.
THING_COLUMNS = _columns(ThingRecord, things, ("attributes",))
CERTIFICATE_COLUMNS = _columns(CertificateRecord, certificates)
CLAIM_COLUMNS = _columns(ClaimRecord, claims, ("allowed_templates",))
TEMPLATE_COLUMNS = _columns(TemplateRecord, provisioning_templates, ("body",), ("enabled",))
TOKEN_COLUMNS = _columns(OwnershipTokenRecord, ownership_tokens)
POLICY_COLUMNS = _columns(PolicyRecord, policies, ("document",), ("project_wide",))
USER_COLUMNS = _columns(MqttUserRecord, mqtt_users)


def values_of(record: Any) -> dict[str, Any]:
    """A record's fields by name (the parameters of an insert of all its columns)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def thing_record(row: Sequence[Any]) -> ThingRecord:
    name, project, attributes, *rest = row
    return ThingRecord(name, project, dict(json.loads(attributes) or {}), *rest)


def certificate_record(row: Sequence[Any]) -> CertificateRecord:
    return CertificateRecord(*row)


def claim_record(row: Sequence[Any]) -> ClaimRecord:
    claim_id, certificate_id, project, description, templates, *rest = row
    return ClaimRecord(
        claim_id, certificate_id, project, description, tuple(json.loads(templates)), *rest
    )


def template_record(row: Sequence[Any]) -> TemplateRecord:
    name, project, description, enabled, body, *rest = row
    return TemplateRecord(name, project, description, bool(enabled), dict(json.loads(body)), *rest)


def token_record(row: Sequence[Any]) -> OwnershipTokenRecord:
    return OwnershipTokenRecord(*row)


def policy_record(row: Sequence[Any]) -> PolicyRecord:
    name, project, document, project_wide, created_at, updated_at = row
    return PolicyRecord(
        name, project, dict(json.loads(document)), bool(project_wide), created_at, updated_at
    )


def user_record(row: Sequence[Any]) -> MqttUserRecord:
    return MqttUserRecord(*row)
