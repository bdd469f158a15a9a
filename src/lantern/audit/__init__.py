"""The audit log of administrative actions: who did what, to which target, when, and how it
ended, never with a secret.

Layer: on :mod:`lantern.store` only, so every service (gateway accounts, provisioning, push
keys, schedules, firmware, FHIR tokens) records through it. Who acts comes from
:mod:`lantern.audit.context` (set once by the CLI and by the HTTP admin check); how an action is
recorded is in :mod:`lantern.audit.recorder`; failed admin logins in
:mod:`lantern.audit.auth_failures`; reading in :mod:`lantern.audit.queries`.
"""

from __future__ import annotations

from lantern.audit.context import (
    ADMIN_TOKEN,
    SYSTEM,
    Actor,
    acting_as,
    api_key_actor,
    cli_actor,
    current_actor,
    set_actor,
)
from lantern.audit.recorder import DENIED, FAILED, OK, AuditedAction, AuditError, audited

__all__ = [
    "ADMIN_TOKEN",
    "DENIED",
    "FAILED",
    "OK",
    "SYSTEM",
    "Actor",
    "AuditError",
    "AuditedAction",
    "acting_as",
    "api_key_actor",
    "audited",
    "cli_actor",
    "current_actor",
    "set_actor",
]
