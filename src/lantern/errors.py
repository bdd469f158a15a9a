"""The root of every exception Lantern raises on purpose.

Each layer defines its own subtree under :class:`LanternError` (for example
``lantern.mqtt.errors.MQTTError``) and translates foreign exceptions at its boundary, so callers
can catch one type per layer.
"""

from __future__ import annotations


class LanternError(Exception):
    """Base class of all Lantern errors."""


class ConfigError(LanternError):
    """A setting is unknown or invalid; the message names it and says how to fix it."""
