"""``jobs/notify`` and ``jobs/notify-next``: when to send them and what they say
(docs/device-topics.md, "Jobs").

Per thing, the last notification's pending job ids and head are stored. After executions change,
:func:`evaluate` compares the current pending list with that record:

* the set of pending job ids changed (an execution was added, became non-terminal, or reached a
  terminal state) -> ``notify``; a QUEUED -> IN_PROGRESS move keeps the set, so it sends nothing;
* the head (first of IN_PROGRESS-then-QUEUED, oldest first) changed -> ``notify-next``.

Because the record lives in the database, changes made by any process (CLI, timer, devices)
produce exactly one notification per real change. Call :func:`evaluate` in the unit of work that
changed the executions (:class:`~lantern.store.jobs.JobsUnitOfWork`); send the messages after it
commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lantern.jobs import wire
from lantern.jobs.documents import DocumentRenderer
from lantern.store.jobs import ExecStatus, ExecutionRecord, JobsUnitOfWork

NOTIFY_LIMIT = 10  # AWS lists at most 10 pending executions in jobs/notify


@dataclass(frozen=True, slots=True)
class ThingNotice:
    thing_name: str
    pending: list[ExecutionRecord]
    notify: bool
    notify_next: bool


def kind(topic: str) -> str:
    """``notify`` or ``notify-next``: which notification ``topic`` carries (for metrics)."""
    return "notify-next" if topic.endswith("/notify-next") else "notify"


def notify_topic(thing_name: str) -> str:
    return f"$aws/things/{thing_name}/jobs/notify"


def notify_next_topic(thing_name: str) -> str:
    return f"$aws/things/{thing_name}/jobs/notify-next"


def evaluate(uow: JobsUnitOfWork, thing_names: Sequence[str]) -> list[ThingNotice]:
    """Compare the things' pending lists with what was last notified, record the new state and
    return what to send. The states are locked first (see
    :mod:`lantern.store.jobs.notify_state`), so concurrent evaluations of one thing take turns
    and a change is notified once."""
    names = sorted(set(thing_names))
    if not names:
        return []
    states = uow.lock_notify_states(names)
    pending = uow.pending_for_things(names)
    notices: list[ThingNotice] = []
    changed: dict[str, tuple[str, str | None]] = {}
    settled: list[str] = []
    for name in names:
        current = pending.get(name, [])
        key, head = _summary(current)
        state = states[name]
        notify, notify_next = key != state.pending_key, head != state.head_job_id
        if notify or notify_next:
            changed[name] = (key, head)
            notices.append(ThingNotice(name, current, notify, notify_next))
        elif state.dirty:
            settled.append(name)
    uow.save_notify_states(changed)
    uow.clear_dirty(settled)
    return notices


def _summary(pending: list[ExecutionRecord]) -> tuple[str, str | None]:
    """What a notification is about: the pending job ids (as a key) and the head's job id."""
    return ",".join(sorted(e.job_id for e in pending)), pending[0].job_id if pending else None


def notify_payload(pending: list[ExecutionRecord], now: float) -> dict[str, Any]:
    jobs: dict[str, list[dict[str, Any]]] = {}
    for e in pending[:NOTIFY_LIMIT]:
        jobs.setdefault(e.status.value, []).append(wire.execution_summary(e))
    return {"timestamp": wire.seconds(now), "jobs": jobs}


def notify_next_payload(
    head: ExecutionRecord | None, renderer: DocumentRenderer, now: float
) -> dict[str, Any]:
    message: dict[str, Any] = {"timestamp": wire.seconds(now)}
    if head is not None:
        message["execution"] = wire.execution(head, renderer.render(head))
    return message


def messages(
    notices: Sequence[ThingNotice], renderer: DocumentRenderer, now: float
) -> list[tuple[str, bytes]]:
    """The (topic, payload) pairs to publish for ``notices``, notify before notify-next."""
    out: list[tuple[str, bytes]] = []
    for n in notices:
        if n.notify:
            out.append((notify_topic(n.thing_name), wire.encode(notify_payload(n.pending, now))))
        if n.notify_next:
            head = n.pending[0] if n.pending else None
            payload = notify_next_payload(head, renderer, now)
            out.append((notify_next_topic(n.thing_name), wire.encode(payload)))
    return out


__all__ = [
    "ExecStatus",
    "ThingNotice",
    "evaluate",
    "messages",
    "notify_next_payload",
    "notify_next_topic",
    "notify_payload",
    "notify_topic",
]
