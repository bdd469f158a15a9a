"""The components ``lantern serve`` runs, in start order."""

from __future__ import annotations

from lantern.runtime.component import Component, Platform


def build_components(platform: Platform) -> list[Component]:
    """Instantiate every component for ``platform``."""
    classes: list[type[Component]] = []
    return [cls(platform) for cls in classes]
