"""Who is acting: the actor of the administrative actions done in the current context.

The two entry points set it once, so no command or route can forget it: the CLI's root callback
(``cli:<OS user>`` for the whole command) and the admin bearer check of the HTTP API
(``admin-token`` with the client's address, for that request's task). Service functions read
it when they record an action. Code outside both (tests, a startup import) acts as ``system``
unless it says otherwise with :func:`acting_as`.

Actor strings: ``admin-token``, ``cli:<OS user>``, ``api-key:<push key id>``, ``config``
(settings applied at startup), ``access-key:<id>`` (an AWS IoT API call signed by that access
key), ``system``, ``unknown`` (failed authentication), ``operator:<name>`` (a web console
account).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "ADMIN_TOKEN",
    "SYSTEM",
    "UNKNOWN",
    "Actor",
    "acting_as",
    "api_key_actor",
    "cli_actor",
    "current_actor",
    "set_actor",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """An actor name and, for HTTP requests, the client's address."""

    name: str
    remote: str | None = None


SYSTEM = Actor("system")
UNKNOWN = "unknown"
ADMIN_TOKEN = "admin-token"  # noqa: S105 - an actor name, not a secret

_current: ContextVar[Actor] = ContextVar("lantern_audit_actor", default=SYSTEM)


def current_actor() -> Actor:
    """The actor of this context (:data:`SYSTEM` when none was set)."""
    return _current.get()


def set_actor(actor: Actor) -> None:
    """Act as ``actor`` for the rest of this context: a CLI command's run, or the task of one
    HTTP request (each request has its own context, so nothing leaks to other requests)."""
    _current.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Act as ``actor`` inside the ``with`` block only."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def cli_actor() -> Actor:
    """``cli:<name of the OS account running the command>`` (from the uid, not from $USER).

    Whoever can run the CLI can also write the database directly, so this attributes an action
    rather than proving who did it.
    """
    uid = os.getuid()
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):  # no passwd entry (some containers)
        name = f"uid-{uid}"
    return Actor(f"cli:{name}")


def api_key_actor(key_id: str) -> Actor:
    """A push API key acting on its own resources (its schedules)."""
    return Actor(f"api-key:{key_id}")
