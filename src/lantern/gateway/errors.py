"""Errors of the gateway layer (all under :class:`GatewayError`)."""

from __future__ import annotations

from lantern.errors import LanternError

__all__ = ["GatewayError", "PolicyError"]


class GatewayError(LanternError):
    """The gateway was asked to do something it cannot (e.g. publish before the server exists)."""


class PolicyError(GatewayError):
    """A policy document is malformed; the message names the statement and field."""
