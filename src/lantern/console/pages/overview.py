"""Overview: what the fleet is doing now, refreshed every few seconds (htmx polls the figures
fragment; console.js plots each refresh on small uPlot charts)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.responses import Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.ingest.queries import ObservationQuery, search_observations
from lantern.jobs.queries import JobStatus
from lantern.provisioning.queries import RegistryQueries
from lantern.push.queries import PushQueries

__all__ = ["add_routes"]


@dataclass
class _Rate:
    """Messages per second between two reads of a running counter."""

    at: float = 0.0
    count: int = 0
    rate: float = 0.0

    def update(self, count: int | None, now: float) -> float | None:
        if count is None:
            return None
        if self.at and now - self.at >= 1.0:
            self.rate = max(0.0, (count - self.count) / (now - self.at))
        if not self.at or now - self.at >= 1.0:
            self.at, self.count = now, count
        return self.rate


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    registry = RegistryQueries(deps.db)
    push = PushQueries(deps.db)
    rate = _Rate()

    async def figures() -> dict[str, object]:
        now = time.time()
        observations = ObservationQuery(date_ge=now - 60)
        _, per_minute = await search_observations(deps.db, observations, limit=1, offset=0)
        # Counts, not reads: the overview refreshes every few seconds whatever the fleet size.
        things = await registry.thing_count()
        provisioned = await registry.thing_count(created_since=now - 3600)
        outcomes = await push.delivery_outcomes(now - 3600)
        deployments = [
            d for d in await deps.jobs.list_deployments() if d.job.status is JobStatus.IN_PROGRESS
        ]
        return {
            "now": now,
            "connected": len(deps.live.connected_things()),
            "connections": deps.live.connections(),
            "things": things,
            "messages_per_second": rate.update(deps.live.messages_received(), now),
            "observations_per_minute": per_minute,
            "provisionings_per_hour": provisioned,
            "push_outcomes": sorted(outcomes.items()),
            "deployments": deployments,
        }

    @routes.get("/console")
    async def overview(page: Page) -> Response:
        return render("overview.html", page.base("overview", **await figures()))

    @routes.get("/console/overview/figures")
    async def overview_figures(page: Page) -> Response:
        return render("overview_figures.html", page.base("overview", **await figures()))
