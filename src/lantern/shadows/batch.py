"""One group-commit batch of shadow changes, applied inside one transaction.

The batch reads every shadow it touches at once, applies its changes in arrival order in memory
(each with exactly the checks it would have alone: version, limits, existence), and writes each
touched shadow once. A change that is refused writes nothing and does not disturb the others.
If the store reports shadows changed by someone else since the read (another process, on
PostgreSQL), the changes of those shadows are re-read and re-applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lantern.shadows.document import Shadow, UpdateRequest, apply_update, from_stored, to_stored
from lantern.shadows.errors import ShadowError, conflict, internal, no_shadow, thing_not_found
from lantern.store.shadows import Key, ShadowRecord, ShadowUnitOfWork

__all__ = ["CAS_ATTEMPTS", "Change", "Delete", "Deleted", "Update", "Updated", "apply_batch"]

CAS_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Updated:
    """An accepted update: the shadow before (None if there was none) and after, and whether
    the update sent a ``desired`` section (only such an update sends a delta, as AWS)."""

    previous: Shadow | None
    current: Shadow
    sent_desired: bool = False


@dataclass(frozen=True, slots=True)
class Deleted:
    """An accepted delete: the version the shadow had."""

    version: int


@dataclass(frozen=True, slots=True)
class Update:
    thing: str
    shadow: str
    request: UpdateRequest

    @property
    def key(self) -> Key:
        return (self.thing, self.shadow)


@dataclass(frozen=True, slots=True)
class Delete:
    thing: str
    shadow: str
    version: int | None

    @property
    def key(self) -> Key:
        return (self.thing, self.shadow)


Change = Update | Delete
Outcome = Updated | Deleted | ShadowError


def missing(thing: str, shadow: str) -> ShadowError:
    """404 for a shadow that does not exist (named by its thing when classic)."""
    return no_shadow(shadow or thing)


def apply_batch(uow: ShadowUnitOfWork, batch: Sequence[Change], now: float) -> list[Outcome]:
    """Each change's outcome, in order (the module docstring says how)."""
    outcomes: list[Outcome] = [internal()] * len(batch)
    todo = list(range(len(batch)))
    for _ in range(CAS_ATTEMPTS):
        keys = list(dict.fromkeys(batch[i].key for i in todo))
        read = uow.get_many(keys)
        new_things = sorted({thing for thing, name in keys if (thing, name) not in read})
        known = uow.existing_things(new_things) if new_things else set()
        state: dict[Key, ShadowRecord | None] = {k: read.get(k) for k in keys}
        changed: dict[Key, None] = {}
        for i in todo:
            change = batch[i]
            try:
                outcome, state[change.key] = _apply(change, state[change.key], known, now)
            except ShadowError as exc:
                outcomes[i] = exc
                continue
            outcomes[i] = outcome
            changed[change.key] = None
        lost = uow.store([(read.get(k), _stored(state[k])) for k in changed], now)
        if not lost:
            return outcomes
        todo = [i for i in todo if batch[i].key in lost]
    for i in todo:
        outcomes[i] = internal()  # kept changing under us: the device retries
    return outcomes


def _stored(record: ShadowRecord | None) -> ShadowRecord:
    assert record is not None  # a changed shadow has its new row
    return record


def _apply(
    change: Change, row: ShadowRecord | None, known_things: set[str], now: float
) -> tuple[Updated | Deleted, ShadowRecord]:
    thing, name = change.thing, change.shadow
    if isinstance(change, Delete):
        if row is None or row.document is None:
            raise missing(thing, name)
        if change.version is not None and change.version != row.version:
            raise conflict()
        return Deleted(row.version), ShadowRecord(thing, name, row.version, None)
    if row is None and thing not in known_things:
        raise thing_not_found()
    current = None
    if row is not None and row.document is not None:
        current = from_stored(row.version, row.document)
    base = row.version if row is not None else 0
    new = apply_update(current, base, change.request, int(now))
    sent_desired = change.request.sections.get("desired") is not None
    record = ShadowRecord(thing, name, new.version, to_stored(new))
    return Updated(current, new, sent_desired), record
