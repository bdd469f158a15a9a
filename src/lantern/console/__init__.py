"""The operator web console at ``/console``: server-rendered Jinja2 pages with htmx for partial
updates and polling, uPlot for charts; every asset is served from this package (no CDN).

Layer: beside :mod:`lantern.api` — it reads through the services' ``queries`` and changes
through the same service functions as the CLI and the REST routes (so every action is in the
audit log), never through the store's repositories. Sessions and operator accounts are
:mod:`lantern.operators`'. See ``docs/console.md``.
"""

from __future__ import annotations

from lantern.console.deps import ConsoleDeps, LiveStats
from lantern.console.router import build_console_router

__all__ = ["ConsoleDeps", "LiveStats", "build_console_router"]
