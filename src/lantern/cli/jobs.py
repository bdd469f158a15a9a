"""``lantern jobs create|list|show|cancel|delete``: generic jobs (any JSON document) — the
jobs AWS CreateJob makes; firmware deployments are listed here too.

Like ``lantern deployments``, these work on the data directory's database directly; a running
``lantern serve`` rolls new jobs out and notifies devices within one timer tick.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    run_async,
    settings_from,
    when,
)
from lantern.cli.firmware import (
    AbortMinExecutedOption,
    InProgressTimeoutOption,
    MaxPerMinuteOption,
    abort_criteria,
)
from lantern.cli.output import JsonOption, print_json
from lantern.cli.tables import Col, print_table
from lantern.jobs.clock import SystemClock
from lantern.jobs.files import FileUrls
from lantern.jobs.generic import JobService, JobSettings, JobSpec, RetryCriterion
from lantern.jobs.queries import Deployment, JobsQueries, JobStatus
from lantern.runtime.datadir import DataDir
from lantern.settings import Settings
from lantern.store import Database
from lantern.store.objects import object_store_from_settings

app = typer.Typer(help="Generic jobs: any JSON document sent to things.", no_args_is_help=True)

JobIdArg = Annotated[str, typer.Argument(help="Job id (letters, digits, '_', '-').")]
T = TypeVar("T")


def _names(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


async def _with(settings: Settings, fn: Callable[[JobService, JobsQueries], Awaitable[T]]) -> T:
    db = await Database.open(settings.effective_database_url)
    objects = object_store_from_settings(
        settings.ingest, DataDir(settings.data_dir.resolve()).files_dir
    )
    await objects.start()
    ingest = settings.ingest
    files = FileUrls(ingest.s3_bucket if ingest.storage_backend == "s3" else None)
    try:
        return await fn(JobService(db, SystemClock(), objects, files), JobsQueries(db))
    finally:
        await objects.close()
        await db.close()


def _run(settings: Settings, fn: Callable[[JobService, JobsQueries], Awaitable[T]]) -> T:
    return run_async(_with(settings, fn))


def job_json(d: Deployment) -> dict[str, Any]:
    """A job as ``lantern jobs show --json`` prints it."""
    job = d.job
    options = job.options or {}
    out: dict[str, Any] = {
        "jobId": job.job_id,
        "kind": job.kind,
        "project": job.project,
        "status": job.status.value,
        "targetSelection": job.target_selection,
        "targets": job.targets or {"kind": job.target_kind, "group": job.target_group},
        "description": job.description,
        "document": job.document,
        "documentSource": options.get("documentSource"),
        "maxPerMinute": job.max_per_minute,
        "exponentialRate": options.get("exponentialRate"),
        "inProgressTimeoutMinutes": job.in_progress_timeout_minutes,
        "retry": options.get("retry") or [],
        "abortConfig": {"criteriaList": job.abort_criteria or []},
        "forceCanceled": job.force_canceled,
        "reasonCode": job.reason,
        "comment": job.comment,
        "createdAt": int(job.created_at),
        "completedAt": int(job.completed_at) if job.completed_at else None,
        "total": d.total,
        "counts": {s.value: n for s, n in sorted(d.counts.items())},
    }
    if d.executions:
        out["executions"] = [
            {
                "thingName": e.thing_name,
                "status": e.status.value,
                "statusDetails": e.status_details,
                "executionNumber": e.execution_number,
                "versionNumber": e.version_number,
                "lastUpdatedAt": int(e.last_updated_at),
            }
            for e in d.executions
        ]
    return out


@app.command("create")
def create_job(
    job_id: JobIdArg,
    document: Annotated[
        Path | None,
        typer.Option(
            "--document", help="The job document: a JSON file (at most 32 KB).", exists=True
        ),
    ] = None,
    document_source: Annotated[
        str | None,
        typer.Option(
            "--document-source", help="A stored file holding the document: lantern://firmware/ID."
        ),
    ] = None,
    things: Annotated[str | None, typer.Option("--things", help="Comma-separated things.")] = None,
    groups: Annotated[
        str | None, typer.Option("--groups", help="Comma-separated thing groups.")
    ] = None,
    continuous: Annotated[
        bool,
        typer.Option("--continuous", help="Follow the groups: later members get the job too."),
    ] = False,
    description: Annotated[str | None, typer.Option("--description")] = None,
    max_per_minute: MaxPerMinuteOption = None,
    in_progress_timeout: InProgressTimeoutOption = None,
    retry_failed: Annotated[
        int | None, typer.Option("--retry-failed", help="Retries of a FAILED execution (0-10).")
    ] = None,
    retry_timed_out: Annotated[
        int | None,
        typer.Option("--retry-timed-out", help="Retries of a TIMED_OUT execution (0-10)."),
    ] = None,
    abort_failure_percent: Annotated[
        float | None,
        typer.Option("--abort-failure-percent", help="Cancel when this % of executed fail."),
    ] = None,
    abort_min_executed: AbortMinExecutedOption = None,
    presigned_expires: Annotated[
        int | None,
        typer.Option("--presigned-expires", help="Seconds a presigned file link lives (60-3600)."),
    ] = None,
    project: Annotated[str, typer.Option("--project", help="Project (tenant).")] = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a job: a JSON document sent to things and the members of thing groups."""
    settings = settings_from(data_dir, config)
    if (document is None) == (document_source is None):
        raise fail(
            "give the job document with --document FILE or --document-source URL (one of them)"
        )
    abort = abort_criteria(abort_failure_percent, abort_min_executed)
    retry = [
        RetryCriterion(kind, n)
        for kind, n in (("FAILED", retry_failed), ("TIMED_OUT", retry_timed_out))
        if n is not None
    ]
    spec = JobSpec(
        job_id=job_id,
        things=_names(things),
        groups=_names(groups),
        document=None if document is None else document.read_text(encoding="utf-8"),
        document_source=document_source,
        target_selection="CONTINUOUS" if continuous else "SNAPSHOT",
        settings=JobSettings(
            description=description,
            max_per_minute=max_per_minute,
            abort=abort,
            in_progress_timeout_minutes=in_progress_timeout,
            retry=retry or None,
            presigned_expires_seconds=presigned_expires,
        ),
        project=project,
    )

    async def go(jobs: JobService, queries: JobsQueries) -> None:
        job = await jobs.create(spec)
        d = await queries.job(job.job_id)
        console.print(
            f"Job [bold]{job.job_id}[/] created for {d.total} thing(s) ({spec.target_selection})."
        )
        console.print(
            "A running `lantern serve` queues the executions and notifies devices within a "
            f"second.\nNext: lantern jobs show {job.job_id}"
        )

    _run(settings, go)


@app.command("list")
def list_jobs(
    status: Annotated[
        str | None, typer.Option("--status", help="IN_PROGRESS, COMPLETED or CANCELED.")
    ] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List jobs (generic jobs and firmware deployments), newest first."""
    settings = settings_from(data_dir, config)
    if status is not None and status not in JobStatus.__members__:
        raise fail(f"--status {status} is not one of IN_PROGRESS, COMPLETED, CANCELED")

    async def go(_jobs: JobService, queries: JobsQueries) -> None:
        items = await queries.list_jobs(status=None if status is None else JobStatus(status))
        if as_json:
            print_json(
                [
                    {
                        "jobId": j.job_id,
                        "kind": j.kind,
                        "status": j.status.value,
                        "targetSelection": j.target_selection,
                        "createdAt": int(j.created_at),
                    }
                    for j in items
                ]
            )
            return
        if not items:
            console.print("No jobs. Create one: lantern jobs create ID --document FILE --things T")
            return
        print_table(
            [
                Col("id", id=True),
                Col("kind", drop=2),
                Col("status"),
                Col("selection", drop=3),
                Col("created", drop=1),
            ],
            [
                [j.job_id, j.kind, j.status.value, j.target_selection, when(j.created_at)]
                for j in items
            ],
        )

    _run(settings, go)


@app.command("show")
def show_job(
    job_id: JobIdArg,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """A job's settings, its execution counts and each thing's execution."""
    settings = settings_from(data_dir, config)

    async def go(_jobs: JobService, queries: JobsQueries) -> None:
        d = await queries.job(job_id, with_executions=True)
        if as_json:
            print_json(job_json(d))
            return
        job = d.job
        console.print(f"Job [bold]{job.job_id}[/]  {job.status.value}  ({job.kind})")
        if job.description:
            console.print(f"  description  {job.description}")
        console.print(f"  selection    {job.target_selection}")
        targets = job.targets or {}
        for kind in ("things", "groups"):
            if targets.get(kind):
                console.print(f"  {kind:<12} {', '.join(targets[kind])}")
        console.print(f"  created      {when(job.created_at)}")
        if job.reason or job.comment:
            console.print(f"  canceled     {job.reason or ''} {job.comment or ''}".rstrip())
        counts = Table("status", "executions")
        for status, n in sorted(d.counts.items()):
            counts.add_row(status.value, str(n))
        counts.add_row("[bold]total[/]", str(d.total))
        console.print(counts)
        print_table(
            [
                Col("thing", id=True),
                Col("status"),
                Col("execution", drop=2, justify="right"),
                Col("version", drop=3, justify="right"),
                Col("last update", drop=1),
            ],
            [
                [
                    e.thing_name,
                    e.status.value,
                    str(e.execution_number),
                    str(e.version_number),
                    when(e.last_updated_at),
                ]
                for e in d.executions
            ],
        )

    _run(settings, go)


@app.command("cancel")
def cancel_job(
    job_id: JobIdArg,
    force: Annotated[
        bool, typer.Option("--force", help="Cancel IN_PROGRESS executions too.")
    ] = False,
    reason_code: Annotated[str | None, typer.Option("--reason-code")] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Cancel a job: its queued executions (and, with --force, those IN_PROGRESS)."""
    settings = settings_from(data_dir, config)

    async def go(jobs: JobService, _q: JobsQueries) -> None:
        things = await jobs.cancel(job_id, force=force, reason_code=reason_code, comment=comment)
        console.print(f"Job {job_id} canceled; {len(things)} execution(s) canceled.")
        if not force:
            console.print(
                f"IN_PROGRESS executions keep running; `lantern jobs cancel {job_id} "
                "--force` cancels them too."
            )

    _run(settings, go)


@app.command("delete")
def delete_job(
    job_id: JobIdArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even while the job is IN_PROGRESS.")
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a job and its executions (a running job needs --force)."""
    settings = settings_from(data_dir, config)

    async def go(jobs: JobService, _q: JobsQueries) -> None:
        await jobs.delete(job_id, force=force)
        console.print(f"Job {job_id} deleted.")

    _run(settings, go)
