"""``lantern schedules``: create, list, show, pause, resume and delete scheduled notifications.

These commands work on the database directly (an operator's view of every key's schedules);
research servers use ``/schedules`` with their API key instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    run_async,
    settings_from,
    with_store,
)
from lantern.cli.output import JsonOption, print_json
from lantern.push.keys import KeyNotFound, KeyService
from lantern.push.scopes import schemes_allowed
from lantern.schedule import ScheduleError, ScheduleService, SystemClock
from lantern.schedule.errors import ProviderNotConfigured
from lantern.schedule.model import mask
from lantern.schedule.queries import ScheduleQueries
from lantern.settings import Settings
from lantern.store import Database

app = typer.Typer(help="Scheduled notifications (reminders sent through the push gateway).")


@dataclass(frozen=True)
class _Owner:
    id: str
    scope: str


def _service(db: Database) -> ScheduleService:
    return ScheduleService.on(db, SystemClock(), schemes_allowed)


def _rule(view: dict[str, Any]) -> str:
    if view["cron"]:
        return f"cron {view['cron']}"
    times = ",".join(view["times"])
    return f"{view['repeat']} {times}".strip()


def _run(data_dir: Any, config: Any, fn: Any, settings: Settings | None = None) -> Any:
    settings = settings or settings_from(data_dir, config)
    try:
        return run_async(with_store(settings, fn))
    except ScheduleError as exc:
        raise fail(exc.message, "see `lantern schedules --help`") from None


def _masked(view: dict[str, Any]) -> dict[str, Any]:
    """The view with each destination masked, as the table shows it: an operator's listing
    does not print participants' device tokens."""
    destinations = [{**d, "destination": mask(d["destination"])} for d in view["destinations"]]
    return {**view, "destinations": destinations}


def _print_schedule(view: dict[str, Any]) -> None:
    console.print(f"[bold]{view['id']}[/]  {view['state']}  (key {view['key_id']})")
    console.print(f"  activity {view['activity_id']}  participant {view['participant_id']}")
    console.print(f"  rule     {_rule(view)} in {view['timezone']}, from {view['start']}")
    if view["end"]:
        console.print(f"  until    {view['end']}")
    for d in view["destinations"]:
        state = "active" if d["active"] else f"deactivated: {d['deactivated_reason']}"
        console.print(f"  to       {mask(d['destination'])}  ({state})")
    console.print("  next fire times:" if view["next_fire_times"] else "  no further fire times")
    for t in view["next_fire_times"]:
        console.print(f"    {t}")


@app.command("create")
def create(
    key: Annotated[str, typer.Option("--key", help="Owning API key id (lantern keys list).")],
    activity: Annotated[str, typer.Option("--activity", help="Activity id.")],
    participant: Annotated[str, typer.Option("--participant", help="Participant id.")],
    to: Annotated[list[str], typer.Option("--to", help="Destination scheme:address (repeat).")],
    title: Annotated[str, typer.Option("--title")],
    message: Annotated[str, typer.Option("--message")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone, e.g. Europe/London.")],
    start: Annotated[str, typer.Option("--start", help="ISO date-time (local if no offset).")],
    end: Annotated[str | None, typer.Option("--end")] = None,
    repeat: Annotated[
        str | None, typer.Option("--repeat", help="daily, weekly, custom ...")
    ] = None,
    times: Annotated[str | None, typer.Option("--times", help="HH:MM[,HH:MM...] local.")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="5-field cron, local time.")] = None,
    allow_unconfigured: Annotated[
        bool,
        typer.Option(
            "--allow-unconfigured",
            help="Accept destinations whose provider is not configured in these settings.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a schedule owned by an API key and print its next fire times.

    A destination whose provider (APNs, FCM, email, SMS, Slack) is not configured in the
    settings this command reads is refused (exit 2), unless --allow-unconfigured."""
    settings = settings_from(data_dir, config)
    configured = None if allow_unconfigured else settings.push.configured_schemes
    request: dict[str, Any] = {
        "activity_id": activity,
        "participant_id": participant,
        "destinations": list(to),
        "title": title,
        "message": message,
        "timezone": timezone,
        "start": start,
    }
    for name, value in (("end", end), ("repeat", repeat), ("cron", cron)):
        if value is not None:
            request[name] = value
    if times is not None:
        request["times"] = [t.strip() for t in times.split(",") if t.strip()]

    async def go(db: Database) -> dict[str, Any]:
        try:
            row = await KeyService(db).get(key)
        except KeyNotFound as exc:
            raise ScheduleError(str(exc), "unknown_key") from None
        if not row.active_at(SystemClock().now()):
            raise ScheduleError(f"API key {key} is revoked", "revoked_key")
        service = ScheduleService.on(
            db, SystemClock(), schemes_allowed, schemes_configured=configured
        )
        try:
            return await service.create(_Owner(row.id, row.scope), request)
        except ProviderNotConfigured as exc:
            raise fail(
                exc.message,
                "configure that provider in the settings `lantern serve` uses (the same "
                "settings file or environment), or pass --allow-unconfigured to keep the "
                "schedule anyway (its occurrences fail until the provider is configured)",
                code=2,
            ) from None

    view = _run(data_dir, config, go, settings)
    console.print("[green]created[/]")
    _print_schedule(view)
    console.print(f"[dim]next: lantern schedules show {view['id']}[/]")


@app.command("list")
def list_(
    key: Annotated[str | None, typer.Option("--key", help="Only this key's schedules.")] = None,
    activity: Annotated[str | None, typer.Option("--activity")] = None,
    participant: Annotated[str | None, typer.Option("--participant")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List schedules with their next fire time."""

    async def go(db: Database) -> list[dict[str, Any]]:
        return await ScheduleQueries(db).schedules(
            key_id=key, activity_id=activity, participant_id=participant, limit=limit
        )

    views = _run(data_dir, config, go)
    if as_json:
        print_json([_masked(v) for v in views])
        return
    if not views:
        console.print("no schedules. Create one: lantern schedules create --help")
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for name in ("key", "activity", "participant", "rule", "zone", "state", "next fire"):
        table.add_column(name, overflow="fold")
    for v in views:
        nxt = v["next_fire_times"][0] if v["next_fire_times"] else "-"
        table.add_row(
            v["id"],
            v["key_id"],
            v["activity_id"],
            v["participant_id"],
            _rule(v),
            v["timezone"],
            v["state"],
            nxt,
        )
    console.print(table)


@app.command("show")
def show(
    schedule_id: Annotated[str, typer.Argument(help="Schedule id (sch_...).")],
    history: Annotated[int, typer.Option("--history", min=0, help="Recent occurrences.")] = 10,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one schedule, its next fire times and its recent history."""

    async def go(db: Database) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        queries = ScheduleQueries(db)
        view = await queries.schedule(schedule_id)
        return view, (await queries.history(schedule_id, history) if history else [])

    view, occurrences = _run(data_dir, config, go)
    if as_json:
        print_json({**_masked(view), "occurrences": occurrences})
        return
    _print_schedule(view)
    if occurrences:
        table = Table("scheduled", "fired", "status", "results", "detail")
        for o in occurrences:
            results = ", ".join(
                f"#{r['destination']} {r['status']}" + (f" ({r['reason']})" if r["reason"] else "")
                for r in o["results"]
            )
            table.add_row(
                o["scheduled_at"], o["fired_at"] or "-", o["status"], results, o["detail"] or ""
            )
        console.print(table)


def _change(schedule_id: str, action: str, data_dir: Any, config: Any) -> None:
    async def go(db: Database) -> dict[str, Any] | None:
        service = _service(db)
        if action == "delete":
            await service.delete(None, schedule_id)
            return None
        fn = service.pause if action == "pause" else service.resume
        return await fn(None, schedule_id)

    view = _run(data_dir, config, go)
    if view is None:
        console.print(f"deleted {schedule_id} (and its history)")
        return
    console.print(f"{schedule_id}: {view['state']}")
    if view["next_fire_times"]:
        console.print(f"next fire: {view['next_fire_times'][0]}")


@app.command("pause")
def pause(schedule_id: str, data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Stop firing until resumed (occurrences meanwhile are not sent)."""
    _change(schedule_id, "pause", data_dir, config)


@app.command("resume")
def resume(schedule_id: str, data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Fire again from the next occurrence after now."""
    _change(schedule_id, "resume", data_dir, config)


@app.command("delete")
def delete(schedule_id: str, data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Delete a schedule and its history."""
    _change(schedule_id, "delete", data_dir, config)
