"""``lantern firmware …``, ``lantern deployments …`` and ``lantern groups …``.

These work on the data directory's database and object store directly, so they run with or
without a server. A running ``lantern serve`` rolls new deployments out and notifies devices
within one timer tick (``[jobs] timer_tick_seconds``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from lantern.api.firmware import deployment_json, firmware_json
from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    run_async,
    settings_from,
    when,
)
from lantern.cli.output import JsonOption, group_json, print_json
from lantern.cli.tables import Col, print_table
from lantern.jobs.catalog import FirmwareCatalog, ThingGroups
from lantern.jobs.clock import SystemClock
from lantern.jobs.deployments import AbortCriterion, DeploymentService, DeploymentSpec
from lantern.jobs.queries import ExecStatus, JobsQueries
from lantern.runtime.datadir import DataDir
from lantern.settings import Settings
from lantern.store import Database
from lantern.store.objects import object_store_from_settings

app = typer.Typer(help="The firmware catalog (images devices update to).", no_args_is_help=True)
deployments_app = typer.Typer(help="Firmware deployments (jobs) to things.", no_args_is_help=True)
groups_app = typer.Typer(help="Static thing groups (deployment targets).", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", help="Project (tenant).")]
MaxPerMinuteOption = Annotated[
    int | None, typer.Option("--max-per-minute", help="Rollout rate (things per minute).")
]
InProgressTimeoutOption = Annotated[
    int | None,
    typer.Option("--in-progress-timeout", help="Minutes a device may stay IN_PROGRESS."),
]
AbortMinExecutedOption = Annotated[
    int | None,
    typer.Option("--abort-min-executed", help="...once at least this many have executed."),
]


def abort_criteria(failure_percent: float | None, min_executed: int | None) -> list[AbortCriterion]:
    """The abort criterion of ``--abort-failure-percent`` and ``--abort-min-executed`` (both
    or neither)."""
    if (failure_percent is None) != (min_executed is None):
        raise fail(
            "--abort-failure-percent and --abort-min-executed go together",
            "e.g. --abort-failure-percent 20 --abort-min-executed 10",
        )
    if failure_percent is None or min_executed is None:
        return []
    return [AbortCriterion("ALL", failure_percent, min_executed)]


FirmwareIdArg = Annotated[str, typer.Argument(help="Firmware id.")]
DeploymentIdArg = Annotated[str, typer.Argument(help="Deployment id.")]
GroupArg = Annotated[str, typer.Argument(help="Group name.")]
ThingsArg = Annotated[str, typer.Argument(help="Comma-separated thing names.")]
T = TypeVar("T")
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Services:
    """What a command works with, on one database and object store."""

    catalog: FirmwareCatalog
    deployments: DeploymentService
    groups: ThingGroups
    queries: JobsQueries


def _thing_names(things: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in (things or "").split(",") if t.strip()]


async def _with_services(settings: Settings, fn: Callable[[Services], Awaitable[T]]) -> T:
    db = await Database.open(settings.effective_database_url)
    objects = object_store_from_settings(
        settings.ingest, DataDir(settings.data_dir.resolve()).files_dir
    )
    await objects.start()
    clock = SystemClock()
    try:
        catalog = FirmwareCatalog(db, objects, clock, settings.jobs.max_firmware_bytes)
        services = Services(
            catalog, DeploymentService(db, clock), ThingGroups(db, clock), JobsQueries(db)
        )
        return await fn(services)
    finally:
        await objects.close()
        await db.close()


def _run(settings: Settings, fn: Callable[[Services], Awaitable[T]]) -> T:
    # JobsError is a LanternError: run_async prints it and exits 1.
    return run_async(_with_services(settings, fn))


# -- firmware ------------------------------------------------------------------------------------
@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="The firmware image.", exists=True, dir_okay=False)],
    version: Annotated[str, typer.Option("--version", help="Firmware version, e.g. 1.4.2.")],
    name: Annotated[str, typer.Option("--name", help="Product/image name.")] = "firmware",
    project: ProjectOption = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Upload a firmware image (SHA-256 and size are recorded)."""
    settings = settings_from(data_dir, config)
    size = file.stat().st_size

    async def go(svc: Services) -> None:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task(f"uploading {file.name}", total=size)

            async def chunks() -> AsyncIterator[bytes]:
                with file.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        progress.advance(task, len(chunk))
                        yield chunk

            record = await svc.catalog.upload(chunks(), version=version, name=name, project=project)
        console.print(f"Firmware [bold]{record.id}[/] stored: {record.name} {record.version}")
        console.print(f"  size    {record.size} bytes\n  sha256  {record.sha256}")
        console.print(
            f"Next: lantern deployments create --firmware {record.id} --things <thing,...>"
        )

    _run(settings, go)


@app.command("list")
def list_firmware(
    project: ProjectOption = "default",
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List firmware images."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        records = await svc.queries.list_firmware(project)
        if as_json:
            print_json([firmware_json(r) for r in records])
            return
        if not records:
            console.print("No firmware yet. Upload one: lantern firmware upload FILE --version V")
            return
        print_table(
            [
                Col("id", id=True),
                Col("name"),
                Col("version"),
                Col("size", drop=2, justify="right"),
                Col("sha256", drop=3),
                Col("uploaded", drop=1),
            ],
            [[r.id, r.name, r.version, str(r.size), r.sha256, when(r.created_at)] for r in records],
        )

    _run(settings, go)


@app.command("show")
def show_firmware(
    firmware_id: FirmwareIdArg,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one firmware image and the deployments using it."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        r = await svc.queries.firmware(firmware_id)
        users = await svc.queries.firmware_users(firmware_id)
        if as_json:
            print_json({**firmware_json(r), "usedBy": users})
            return
        console.print(f"[bold]{r.id}[/]  {r.name} {r.version}  (project {r.project})")
        console.print(f"  size      {r.size} bytes\n  sha256    {r.sha256}")
        console.print(f"  uploaded  {when(r.created_at)}")
        console.print(f"  used by   {', '.join(users) if users else 'no active deployment'}")

    _run(settings, go)


@app.command("delete")
def delete_firmware(
    firmware_id: FirmwareIdArg,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a firmware image (refused while a deployment uses it)."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        r = await svc.catalog.delete(firmware_id)
        console.print(f"Deleted firmware {r.id} ({r.name} {r.version}).")

    _run(settings, go)


# -- deployments ---------------------------------------------------------------------------------
@deployments_app.command("create")
def create_deployment(
    firmware: Annotated[str, typer.Option("--firmware", help="Firmware id to deploy.")],
    things: Annotated[
        str | None, typer.Option("--things", help="Comma-separated thing names.")
    ] = None,
    group: Annotated[str | None, typer.Option("--group", help="A thing group.")] = None,
    all_things: Annotated[bool, typer.Option("--all", help="Every thing of the project.")] = False,
    max_per_minute: MaxPerMinuteOption = None,
    in_progress_timeout: InProgressTimeoutOption = None,
    abort_failure_percent: Annotated[
        float | None,
        typer.Option("--abort-failure-percent", help="Abort when this % of executed things fail."),
    ] = None,
    abort_min_executed: AbortMinExecutedOption = None,
    deployment_id: Annotated[
        str | None, typer.Option("--id", help="Deployment (job) id; default generated.")
    ] = None,
    project: ProjectOption = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Deploy a firmware image to things, a group, or all things."""
    settings = settings_from(data_dir, config)
    abort = abort_criteria(abort_failure_percent, abort_min_executed)
    names = _thing_names(things)
    spec = DeploymentSpec(
        firmware_id=firmware,
        things=names,
        group=group,
        all_things=all_things,
        project=project,
        max_per_minute=max_per_minute,
        in_progress_timeout_minutes=in_progress_timeout,
        abort=abort,
        deployment_id=deployment_id,
    )

    async def go(svc: Services) -> None:
        job = await svc.deployments.create(spec)
        d = await svc.queries.deployment(job.job_id, with_executions=False)
        rate = f"{max_per_minute}/min" if max_per_minute else "all at once"
        console.print(
            f"Deployment [bold]{job.job_id}[/] created for {d.total} thing(s), rollout {rate}."
        )
        console.print(
            "A running `lantern serve` queues the executions and notifies devices within a "
            f"second.\nNext: lantern deployments show {job.job_id}"
        )

    _run(settings, go)


@deployments_app.command("list")
def list_deployments(
    project: ProjectOption = "default",
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List deployments with their execution counts."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        items = await svc.queries.list_deployments(project)
        if as_json:
            print_json([deployment_json(d) for d in items])
            return
        if not items:
            console.print("No deployments. Create one: lantern deployments create --firmware ID …")
            return
        rows = []
        for d in items:
            failed = sum(
                d.counts.get(s, 0)
                for s in (ExecStatus.FAILED, ExecStatus.REJECTED, ExecStatus.TIMED_OUT)
            )
            rows.append(
                [
                    d.job.job_id,
                    d.job.firmware_id or "",
                    str(d.job.document.get("firmwareVersion", "")),
                    d.job.status.value,
                    str(d.total),
                    str(d.counts.get(ExecStatus.SUCCEEDED, 0)),
                    str(failed),
                    when(d.job.created_at),
                ]
            )
        print_table(
            [
                Col("deployment", id=True),
                Col("firmware", id=True, drop=2),
                Col("version"),
                Col("status"),
                Col("things", justify="right"),
                Col("ok", justify="right"),
                Col("failed", justify="right"),
                Col("created", drop=1),
            ],
            rows,
        )

    _run(settings, go)


@deployments_app.command("show")
def show_deployment(
    deployment_id: DeploymentIdArg,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Counts per execution status, and each device's status and progress."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        d = await svc.queries.deployment(deployment_id)
        if as_json:
            print_json(deployment_json(d))
            return
        job = d.job
        version = job.document.get("firmwareVersion", "")
        target = {
            "group": f"group {job.target_group}",
            "all": "every thing of the project",
        }.get(job.target_kind, "the things named")
        console.print(f"Deployment [bold]{job.job_id}[/]  {job.status.value}")
        console.print(f"  firmware id       {job.firmware_id or '-'}")
        console.print(f"  firmware version  {version or '-'}")
        console.print(f"  target            {target}  ({d.total} thing(s))")
        console.print(f"  created           {when(job.created_at)}")
        if job.reason:
            console.print(f"  reason            {job.reason}")
        counts = Table("status", "executions")
        for status, n in sorted(d.counts.items()):
            counts.add_row(status.value, str(n))
        counts.add_row("[bold]total[/]", str(d.total))
        console.print(counts)
        rows = []
        for e in d.executions:
            progress = e.status_details.get("percentProgress") or e.status_details.get("progress")
            rows.append(
                [
                    e.thing_name,
                    e.status.value,
                    f"{progress}%" if progress and progress.isdigit() else (progress or ""),
                    str(e.version_number),
                    when(e.last_updated_at),
                ]
            )
        print_table(
            [
                Col("thing", id=True),
                Col("status"),
                Col("progress", justify="right"),
                Col("execution version", justify="right"),
                Col("last update", drop=1),
            ],
            rows,
        )
        if d.executions:
            console.print(
                "[dim]execution version: the job execution's versionNumber (it grows with each "
                "update a device makes), not the firmware version.[/]",
                soft_wrap=False,
            )

    _run(settings, go)


@deployments_app.command("cancel")
def cancel_deployment(
    deployment_id: DeploymentIdArg,
    force: Annotated[
        bool, typer.Option("--force", help="Also cancel executions already IN_PROGRESS.")
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Cancel a deployment (AWS CancelJob semantics)."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        things = await svc.deployments.cancel(deployment_id, force=force)
        console.print(f"Deployment {deployment_id} canceled; {len(things)} execution(s) canceled.")
        if not force:
            console.print("IN_PROGRESS executions keep running; use --force to cancel them too.")

    _run(settings, go)


# -- groups --------------------------------------------------------------------------------------
@groups_app.command("create")
def create_group(
    name: GroupArg,
    description: Annotated[str, typer.Option("--description")] = "",
    project: ProjectOption = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a static thing group."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        await svc.groups.create(name, description, project)
        console.print(f"Group {name} created. Next: lantern groups add {name} <thing,...>")

    _run(settings, go)


@groups_app.command("add")
def add_to_group(
    name: GroupArg,
    things: ThingsArg,
    project: ProjectOption = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Add things to a group."""
    settings = settings_from(data_dir, config)
    names = _thing_names(things)

    async def go(svc: Services) -> None:
        added = await svc.groups.add(name, names, project)
        console.print(f"Added {added} thing(s) to {name}.")

    _run(settings, go)


@groups_app.command("remove")
def remove_from_group(
    name: GroupArg,
    things: ThingsArg,
    project: ProjectOption = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove things from a group."""
    settings = settings_from(data_dir, config)
    names = _thing_names(things)

    async def go(svc: Services) -> None:
        removed = await svc.groups.remove(name, names, project)
        console.print(f"Removed {removed} thing(s) from {name}.")

    _run(settings, go)


@groups_app.command("list")
def list_groups(
    project: ProjectOption = "default",
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List thing groups."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        groups = await svc.queries.list_groups(project)
        if as_json:
            print_json([group_json(g) for g in groups])
            return
        print_table(
            [
                Col("group", id=True),
                Col("members", justify="right"),
                Col("description", drop=2),
                Col("created", drop=1),
            ],
            [[g.name, str(g.member_count), g.description, when(g.created_at)] for g in groups],
        )

    _run(settings, go)


@groups_app.command("show")
def show_group(
    name: GroupArg,
    project: ProjectOption = "default",
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a group's members."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        group, members = await svc.queries.group(name, project)
        if as_json:
            print_json(group_json(group, members))
            return
        console.print(f"[bold]{group.name}[/] ({len(members)} member(s)) {group.description}")
        for m in members:
            console.print(f"  {m}")

    _run(settings, go)


@groups_app.command("delete")
def delete_group(
    name: GroupArg,
    project: ProjectOption = "default",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a group (its things are not touched)."""
    settings = settings_from(data_dir, config)

    async def go(svc: Services) -> None:
        await svc.groups.delete(name, project)
        console.print(f"Group {name} deleted.")

    _run(settings, go)
