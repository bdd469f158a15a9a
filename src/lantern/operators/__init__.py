"""Console operators: accounts with a role (:mod:`.accounts`) and signed-in sessions with
idle expiry and a CSRF token (:mod:`.sessions`). Used by ``lantern operators`` and the web
console; every change is recorded in the audit log."""

from __future__ import annotations

from lantern.operators.accounts import (
    ROLES,
    Operator,
    OperatorConflict,
    OperatorError,
    OperatorNotFound,
    authenticate,
    create_operator,
    disable_operator,
    list_operators,
)
from lantern.operators.sessions import ConsoleSession, SessionStore

__all__ = [
    "ROLES",
    "ConsoleSession",
    "Operator",
    "OperatorConflict",
    "OperatorError",
    "OperatorNotFound",
    "SessionStore",
    "authenticate",
    "create_operator",
    "disable_operator",
    "list_operators",
]
