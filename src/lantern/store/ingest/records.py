"""The records of the ingest repository (plain data, no database): what services and the
read-side queries handle."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FileRecord",
    "ObservationQuery",
    "ObservationRow",
    "OutboxEntry",
    "TokenRecord",
    "UploadLink",
]


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """One observation to store, with its search columns and codes."""

    id: str
    project: str
    thing_name: str
    patient_id: str | None
    effective_at: float
    issued_at: float
    resource: str  # the FHIR Observation, serialized JSON
    codes: tuple[tuple[str, str], ...]  # (system, code) of each coding


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    """An Observation search (FHIR parameters already parsed)."""

    project: str | None = None
    patient_id: str | None = None
    thing_name: str | None = None
    patient_absent: bool = False  # subject is the Device (no patient given)
    code: tuple[str | None, str] | None = None  # (system or None for any, code)
    date_ge: float | None = None
    date_gt: float | None = None
    date_le: float | None = None
    date_lt: float | None = None
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    project: str
    scope: str
    name: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class UploadLink:
    id: str
    project: str
    thing_name: str
    file_name: str
    content_type: str
    object_key: str
    backend: str
    created_at: float
    expires_at: float
    used_at: float | None
    state: str


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    project: str
    thing_name: str
    file_name: str
    content_type: str
    size: int
    sha256: str
    object_key: str
    backend: str
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    observation_id: str
    attempts: int
