"""The root of every exception Lantern raises on purpose.

Each layer defines its own subtree under :class:`LanternError` (for example
``lantern.mqtt.errors.MQTTError``) and translates foreign exceptions at its boundary, so callers
can catch one type per layer.

Every error also says what an HTTP API answers when it reaches one: ``http_status`` and a stable
machine ``code`` (class attributes a subclass overrides, or instance attributes for errors whose
code varies). :mod:`lantern.api.errors` turns any ``LanternError`` a route lets through into the
documented error shape of that route's API family; a router does not map errors itself.
"""

from __future__ import annotations


class LanternError(Exception):
    """Base class of all Lantern errors. Unless a subclass says otherwise it is a server-side
    failure: HTTP 500, and the caller learns nothing but that (the cause is logged)."""

    http_status: int = 500
    code: str = "InternalError"


class ConfigError(LanternError):
    """A setting is unknown or invalid; the message names it and says how to fix it."""


class InvalidRequest(LanternError):
    """The caller's request is wrong; the message names what and how to fix it."""

    http_status = 400
    code = "InvalidRequest"


class NotFound(LanternError):
    """The thing the request names does not exist (or is not visible to the caller)."""

    http_status = 404
    code = "NotFound"


class Conflict(LanternError):
    """The request does not fit the current state (already exists, in use, ...)."""

    http_status = 409
    code = "Conflict"


class Unauthorized(LanternError):
    """The request carries no valid credentials; the message says how to authenticate."""

    http_status = 401
    code = "Unauthorized"
