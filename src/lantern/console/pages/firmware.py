"""Firmware and deployments: upload an image (the browser shows the upload's progress), create
a deployment for things, a group or every thing, watch its progress live (htmx polls the
progress fragment), cancel it (queued executions) or abort it (in-progress ones too).

The same services as ``lantern firmware|deployments`` and ``/v1/firmware|deployments``:
:class:`~lantern.jobs.catalog.FirmwareCatalog`, :class:`~lantern.jobs.deployments.
DeploymentService` (audited as ``firmware.upload``, ``deployment.create``, ``deployment.cancel``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import PlainTextResponse, Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.errors import InvalidRequest
from lantern.jobs.deployments import DeploymentSpec
from lantern.jobs.queries import Deployment, ExecStatus, JobStatus

__all__ = ["add_routes"]

SHOWN = ("QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELED")
FINISHED = frozenset(
    {
        ExecStatus.SUCCEEDED,
        ExecStatus.FAILED,
        ExecStatus.TIMED_OUT,
        ExecStatus.REJECTED,
        ExecStatus.REMOVED,
        ExecStatus.CANCELED,
    }
)


def progress(d: Deployment) -> dict[str, object]:
    """Counts by status and the share of executions finished (any outcome) and succeeded."""
    total = d.total
    finished = sum(n for s, n in d.counts.items() if s in FINISHED)
    succeeded = d.counts.get(ExecStatus.SUCCEEDED, 0)
    return {
        "counts": {s: d.counts.get(ExecStatus(s), 0) for s in SHOWN},
        "planned": d.counts.get(ExecStatus.PLANNED, 0),
        "total": total,
        "finished_percent": round(100 * finished / total) if total else 100,
        "succeeded_percent": round(100 * succeeded / total) if total else 0,
        "live": d.job.status is JobStatus.IN_PROGRESS,
    }


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    async def firmware_page(page: Page, flash: str = "") -> Response:
        deployments = sorted(await deps.jobs.list_deployments(), key=lambda d: -d.job.created_at)
        context = page.base(
            "firmware",
            firmware=await deps.jobs.list_firmware(),
            deployments=[(d, progress(d)) for d in deployments],
            groups=await deps.jobs.list_groups(),
            flash=flash,
        )
        return render("firmware.html", context, headers={"HX-Push-Url": "/console/firmware"})

    @routes.get("/console/firmware")
    async def firmware(page: Page) -> Response:
        uploaded = page.query("uploaded")
        return await firmware_page(page, f"Firmware {uploaded} uploaded." if uploaded else "")

    @routes.post("/console/firmware/upload")
    async def upload(page: Page) -> Response:
        version, name = page.query("version"), page.query("name") or "firmware"
        if not version:
            raise InvalidRequest("give the firmware version")

        async def body() -> AsyncIterator[bytes]:
            async for chunk in page.request.stream():
                if chunk:
                    yield chunk

        record = await deps.catalog.upload(body(), version=version, name=name)
        return PlainTextResponse(record.id, status_code=201)

    @routes.post("/console/deployments")
    async def create(page: Page) -> Response:
        firmware_id, target = page.field("firmware_id"), page.field("target")
        things = [t.strip() for t in page.field("things").replace(",", " ").split() if t.strip()]
        group = page.field("group") or None
        if not firmware_id:
            raise InvalidRequest("choose the firmware to deploy")
        if target not in ("things", "group", "all"):
            raise InvalidRequest("choose the target: things, a group, or all things")
        if target == "things" and not things:
            raise InvalidRequest("name at least one thing")
        if target == "group" and not group:
            raise InvalidRequest("choose a group")
        rate = page.field("max_per_minute")
        if rate and not rate.isdigit():
            raise InvalidRequest("max per minute: a whole number, or empty")
        spec = DeploymentSpec(
            firmware_id=firmware_id,
            things=things if target == "things" else (),
            group=group if target == "group" else None,
            all_things=target == "all",
            max_per_minute=int(rate) if rate else None,
        )
        job = await deps.deployments.create(spec)
        await deps.jobs_changed()
        return await deployment_page(page, job.job_id, f"Deployment {job.job_id} created.")

    async def deployment_page(page: Page, job_id: str, flash: str = "") -> Response:
        d = await deps.jobs.deployment(job_id)
        context = page.base("firmware", d=d, p=progress(d), flash=flash)
        return render(
            "deployment.html", context, headers={"HX-Push-Url": f"/console/deployments/{job_id}"}
        )

    @routes.get("/console/deployments/{job_id}")
    async def deployment(page: Page) -> Response:
        return await deployment_page(page, page.request.path_params["job_id"])

    @routes.get("/console/deployments/{job_id}/progress")
    async def deployment_progress(page: Page) -> Response:
        d = await deps.jobs.deployment(page.request.path_params["job_id"])
        p = progress(d)
        # htmx stops polling on 286: nothing changes once the deployment is over.
        status = 200 if p["live"] else 286
        return render("deployment_progress.html", page.base("firmware", d=d, p=p), status=status)

    @routes.post("/console/deployments/{job_id}/cancel")
    async def cancel(page: Page) -> Response:
        job_id = page.request.path_params["job_id"]
        force = page.field("force") == "true"
        canceled = await deps.deployments.cancel(
            job_id,
            force=force,
            reason="aborted in the console" if force else "canceled in the console",
        )
        await deps.jobs_changed()
        what = "aborted" if force else "canceled"
        return await deployment_page(
            page, job_id, f"Deployment {job_id} {what}: {len(canceled)} execution(s) stopped."
        )
