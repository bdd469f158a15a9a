"""``--json`` output of the list and show commands.

One JSON document on standard output (a list for a list command, an object for a show command)
and nothing else there. Records the REST API also returns keep its field names (the functions in
``lantern.api``); the rest follow the same style: camelCase, times as integer Unix seconds
(``createdAt``), absent values as ``null``. Secrets and their hashes are never included.
docs/cli.md lists the fields.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from lantern.gateway.accounts import MqttUserRecord, PolicyRecord
from lantern.ingest.queries import TokenRecord
from lantern.jobs.queries import GroupRecord
from lantern.push.queries import ApiKeyRow, DeliveryRow

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document (stable field names), not a table."),
]


def print_json(document: Any) -> None:
    """Write ``document`` to standard output as JSON (plain text: no colours, no wrapping)."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def api_key_json(row: ApiKeyRow) -> dict[str, Any]:
    """An API key as ``keys list --json`` prints it (never its secret nor the secret's hash)."""
    return {
        "keyId": row.id,
        "name": row.name,
        "scope": row.scope,
        "ratePerMinute": row.rate_per_minute,
        "createdAt": _ts(row.created_at),
        "revokedAt": _ts(row.revoked_at),
        "revokeNote": row.revoke_note,
        "replacedBy": row.replaced_by,
        "source": row.source,
    }


def delivery_json(row: DeliveryRow) -> dict[str, Any]:
    return {
        "deliveryId": row.id,
        "keyId": row.key_id,
        "scheme": row.scheme,
        "addressHash": row.address_hash,
        "status": row.status,
        "httpStatus": row.http_status,
        "reason": row.reason,
        "attempts": row.attempts,
        "latencyMs": row.latency_ms,
        "createdAt": _ts(row.created_at),
    }


def token_json(record: TokenRecord) -> dict[str, Any]:
    return {
        "tokenId": record.id,
        "project": record.project,
        "scope": record.scope,
        "name": record.name,
        "createdAt": _ts(record.created_at),
        "revokedAt": _ts(record.revoked_at),
    }


def group_json(group: GroupRecord, members: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "groupName": group.name,
        "project": group.project,
        "description": group.description,
        "memberCount": group.member_count,
        "createdAt": _ts(group.created_at),
    }
    if members is not None:
        doc["members"] = members
    return doc


def mqtt_user_json(user: MqttUserRecord) -> dict[str, Any]:
    """A user of the plain MQTT listeners (never the password hash)."""
    return {
        "username": user.username,
        "project": user.project,
        "policyName": user.policy_name,
        "createdAt": _ts(user.created_at),
        "disabledAt": _ts(user.disabled_at),
    }


def policy_json(policy: PolicyRecord) -> dict[str, Any]:
    return {
        "policyName": policy.name,
        "project": policy.project,
        "projectWide": policy.project_wide,
        "policyDocument": policy.document,
        "createdAt": _ts(policy.created_at),
        "updatedAt": _ts(policy.updated_at),
    }
