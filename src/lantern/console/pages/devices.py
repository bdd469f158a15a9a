"""Devices: the list (search by name or attribute, online or offline) and a device's page
(its FHIR Device data and attributes, certificates with activate / deactivate / revoke, latest
observations with a chart per code, files with download, job executions).

Certificate changes go through :func:`lantern.provisioning.admin.set_certificate_status`, as
``lantern certs`` and ``PUT /v1/certificates`` do: a deactivated or revoked device's live MQTT
connection is closed by the gateway's revocation watcher within a second.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.observations import chart_series, observation_row
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.errors import InvalidRequest, NotFound
from lantern.ingest import queries as ingest
from lantern.ingest.queries import ObservationQuery
from lantern.provisioning import admin
from lantern.provisioning.queries import RegistryQueries, ThingRecord

__all__ = ["add_routes"]

STATUS_ACTIONS = {"activate": "ACTIVE", "deactivate": "INACTIVE", "revoke": "REVOKED"}
RECENT_DEPLOYMENTS = 20
SHOWN_DEVICES = 500


def _matches(thing: ThingRecord, text: str, attribute: str) -> bool:
    if text and text.lower() not in thing.name.lower():
        return False
    if attribute:
        key, sep, value = attribute.partition("=")
        have = thing.attributes.get(key.strip())
        if have is None or (sep and have != value.strip()):
            return False
    return True


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    registry = RegistryQueries(deps.db)

    @routes.get("/console/devices")
    async def devices(page: Page) -> Response:
        text, attribute, online = page.query("q"), page.query("attr"), page.query("online")
        within = page.query("seen")
        if within and (not within.isdigit() or len(within) > 6):
            raise InvalidRequest("seen within: a whole number of minutes")
        connected = deps.live.connected_things()
        seen = deps.live.last_seen()
        since = time.time() - int(within) * 60 if within else None
        rows = []
        for thing in await registry.things():
            is_online = thing.name in connected
            if (online == "yes" and not is_online) or (online == "no" and is_online):
                continue
            if since is not None and seen.get(thing.name, 0.0) < since:
                continue
            if _matches(thing, text, attribute):
                rows.append((thing, is_online, seen.get(thing.name)))
        context = page.base(
            "devices",
            rows=rows[:SHOWN_DEVICES],
            q=text,
            attr=attribute,
            online=online,
            seen=within,
            total=len(rows),
            shown=min(len(rows), SHOWN_DEVICES),
        )
        return render("devices.html", context)

    async def device_page(page: Page, name: str, flash: str = "") -> Response:
        detail = await registry.thing(name)
        if detail is None:
            raise NotFound(f"device {name} does not exist")
        query = ObservationQuery(thing_name=name)
        resources, total = await ingest.search_observations(deps.db, query, limit=200, offset=0)
        observations = [observation_row(r) for r in resources]
        series = [
            (code, display, json.dumps(points))
            for code, display, points in chart_series(observations)
        ]
        files = await ingest.list_files(deps.db, thing_name=name)
        executions = []
        deployments = await deps.jobs.list_deployments()
        for d in sorted(deployments, key=lambda d: -d.job.created_at)[:RECENT_DEPLOYMENTS]:
            full = await deps.jobs.deployment(d.job.job_id)
            executions += [(d.job, e) for e in full.executions if e.thing_name == name]
        context = page.base(
            "devices",
            thing=detail.thing,
            certificates=detail.certificates,
            online=name in deps.live.connected_things(),
            last_seen=deps.live.last_seen().get(name),
            observations=observations[:20],
            observation_total=total,
            series=series,
            files=files,
            executions=executions,
            flash=flash,
        )
        return render("device.html", context, headers={"HX-Push-Url": f"/console/devices/{name}"})

    @routes.get("/console/devices/{name}")
    async def device(page: Page) -> Response:
        return await device_page(page, page.request.path_params["name"])

    @routes.post("/console/devices/{name}/certificates/{cert}/{action}")
    async def certificate_action(page: Page) -> Response:
        params = page.request.path_params
        status = STATUS_ACTIONS.get(params["action"])
        if status is None:
            raise InvalidRequest(f"unknown action {params['action']}")
        cert = await admin.find_certificate(deps.db, params["cert"])
        if cert.thing_name != params["name"]:
            raise NotFound(f"certificate {params['cert']} is not {params['name']}'s")
        await admin.set_certificate_status(deps.db, cert.id, status)
        done = f"Certificate {cert.id[:12]} is now {status}."
        if status != "ACTIVE":
            done += " Its live MQTT connection is closed within a second."
        return await device_page(page, params["name"], done)

    @routes.get("/console/files/{file_id}/download")
    async def download(page: Page) -> Response:
        record = await ingest.get_file(deps.db, page.request.path_params["file_id"])
        if record is None:
            raise NotFound("no such file")
        return StreamingResponse(
            deps.objects.open_range(record.object_key),
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(record.size),
                "Content-Disposition": "attachment; filename*=UTF-8''"
                + quote(record.file_name, safe=""),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )
