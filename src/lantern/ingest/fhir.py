"""FHIR read side: Device resources from the registry, search-parameter parsing, Bundles,
the CapabilityStatement and OperationOutcomes. Pure functions; the HTTP layer wires them up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.device import Device

from lantern.ingest.errors import IngestError
from lantern.store.ingest import ObservationQuery
from lantern.store.registry import ThingRecord

THING_IDENTIFIER_SYSTEM = "urn:lantern:thing-name"
DEFAULT_COUNT = 50
MAX_COUNT = 1000
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DATE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_FORMATS = {"json", "application/json", "application/fhir+json"}


class SearchError(IngestError):
    """A search parameter is invalid; rendered as a 400 OperationOutcome."""

    http_status = 400
    code = "InvalidRequest"


def device_fhir_id(thing_name: str) -> str:
    """The FHIR ``Device`` id of a thing: its name when that is a valid FHIR id, otherwise a
    stable digest (thing names may hold ``:`` and ``_``, which FHIR ids may not)."""
    if _FHIR_ID.match(thing_name):
        return thing_name
    return "thing-" + hashlib.sha256(thing_name.encode()).hexdigest()[:40]


def device_resource(thing: ThingRecord) -> dict[str, Any]:
    """The FHIR Device of a provisioned thing (docs/device-topics.md), validated."""
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": device_fhir_id(thing.name),
        "identifier": [{"system": THING_IDENTIFIER_SYSTEM, "value": thing.name}],
        "status": "active",
    }
    if thing.serial_number:
        resource["serialNumber"] = thing.serial_number
    if thing.manufacturer:
        resource["manufacturer"] = thing.manufacturer
    if thing.model:
        resource["modelNumber"] = thing.model
    if thing.device_name:
        resource["deviceName"] = [{"name": thing.device_name, "type": "user-friendly-name"}]
    Device.model_validate(resource)
    return resource


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def _one(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise SearchError(f"parameter {name} may appear once")
    if values and not values[0]:
        raise SearchError(f"parameter {name} is empty")
    return values[0] if values else None


def _date_range(value: str) -> tuple[float, float]:
    """``[start, end)`` epoch seconds covered by a FHIR date/dateTime at its precision."""
    m = _DATE.match(value)
    if not m:
        raise SearchError(f"date value {value!r} is not a FHIR date or dateTime")
    try:
        y, mo, d = int(m["y"]), int(m["m"] or 1), int(m["d"] or 1)
        if m["time"]:
            parts = m["time"].split(":")
            sec = float(parts[2]) if len(parts) > 2 else 0.0
            tz = m["tz"] or "Z"
            start_dt = datetime.fromisoformat(
                f"{y:04d}-{mo:02d}-{d:02d}T{parts[0]}:{parts[1]}:00"
                + ("+00:00" if tz == "Z" else tz)
            ) + timedelta(seconds=sec)
            step = timedelta(seconds=1) if len(parts) > 2 else timedelta(minutes=1)
            return start_dt.timestamp(), (start_dt + step).timestamp()
        start = datetime(y, mo, d, tzinfo=UTC)
    except ValueError:
        raise SearchError(f"date value {value!r} is not a valid date") from None
    if m["d"]:
        end = start + timedelta(days=1)
    elif m["m"]:
        end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
    else:
        end = datetime(y + 1, 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def _apply_date(q: ObservationQuery, raw: str) -> ObservationQuery:
    prefix, value = (raw[:2], raw[2:]) if raw[:2].isalpha() else ("eq", raw)
    start, end = _date_range(value)

    def tighter(current: float | None, new: float, lower: bool) -> float:
        if current is None:
            return new
        return max(current, new) if lower else min(current, new)

    if prefix == "eq":
        return replace(
            q, date_ge=tighter(q.date_ge, start, True), date_lt=tighter(q.date_lt, end, False)
        )
    if prefix == "ge":
        return replace(q, date_ge=tighter(q.date_ge, start, True))
    if prefix == "gt":
        return replace(q, date_ge=tighter(q.date_ge, end, True))
    if prefix == "le":
        return replace(q, date_lt=tighter(q.date_lt, end, False))
    if prefix == "lt":
        return replace(q, date_lt=tighter(q.date_lt, start, False))
    raise SearchError(f"date prefix {prefix!r} is not supported (use eq, ge, gt, le, lt)")


def _ref(value: str, kind: str, param: str) -> str:
    if "/" in value:
        typ, _, ident = value.partition("/")
        if typ != kind or not ident or "/" in ident:
            raise SearchError(f"parameter {param} must be {kind}/<id> or <id>")
        return ident
    return value


@dataclass(frozen=True, slots=True)
class Paging:
    count: int
    offset: int


def parse_paging(params: Sequence[tuple[str, str]]) -> Paging:
    def number(name: str, default: int, lo: int, hi: int) -> int:
        raw = _one(params, name)
        if raw is None:
            return default
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise SearchError(f"parameter {name} must be an integer from {lo} to {hi}")
        return int(raw)

    return Paging(
        count=number("_count", DEFAULT_COUNT, 1, MAX_COUNT),
        offset=number("_offset", 0, 0, 10_000_000),
    )


def _check_known(params: Sequence[tuple[str, str]], known: set[str]) -> None:
    for name, value in params:
        if name == "_format":
            if value not in _FORMATS:
                raise SearchError("only JSON is served (_format=json)")
            continue
        if name not in known:
            raise SearchError(
                f"unknown search parameter {name!r}; supported: {', '.join(sorted(known))}"
            )


def parse_observation_search(
    params: Sequence[tuple[str, str]], project: str | None, thing_name_of: dict[str, str]
) -> ObservationQuery:
    """An :class:`ObservationQuery` from query parameters; raises :class:`SearchError`.

    ``thing_name_of`` maps a Device id that is not itself a thing name back to the name.
    """
    _check_known(
        params, {"patient", "subject", "device", "code", "date", "_count", "_offset", "_sort"}
    )
    q = ObservationQuery(project=project)
    patient = _one(params, "patient")
    if patient is not None:
        q = replace(q, patient_id=_ref(patient, "Patient", "patient"))
    subject = _one(params, "subject")
    if subject is not None:
        typ, _, ident = subject.partition("/")
        if typ == "Patient" and ident:
            if q.patient_id not in (None, ident):
                raise SearchError("patient and subject name different patients")
            q = replace(q, patient_id=ident)
        elif typ == "Device" and ident:
            q = replace(q, thing_name=thing_name_of.get(ident, ident), patient_absent=True)
        else:
            raise SearchError("parameter subject must be Patient/<id> or Device/<id>")
    device = _one(params, "device")
    if device is not None:
        ident = _ref(device, "Device", "device")
        name = thing_name_of.get(ident, ident)
        if q.thing_name not in (None, name):
            raise SearchError("device and subject name different devices")
        q = replace(q, thing_name=name)
    code = _one(params, "code")
    if code is not None:
        if "," in code:
            raise SearchError("parameter code takes one <system>|<code> (no comma lists)")
        if "|" in code:
            system, _, value = code.partition("|")
            if not value:
                raise SearchError("parameter code must be <system>|<code> or <code>")
            q = replace(q, code=(system or None, value))
        else:
            q = replace(q, code=(None, code))
    for name, value in params:
        if name == "date":
            if not value:
                raise SearchError("parameter date is empty")
            q = _apply_date(q, value)
    sort = _one(params, "_sort")
    if sort is not None:
        if sort not in {"date", "-date"}:
            raise SearchError("parameter _sort must be date or -date")
        q = replace(q, newest_first=sort == "-date")
    return q


def parse_device_search(params: Sequence[tuple[str, str]]) -> str | None:
    """The thing name an ``identifier`` search asks for (None = all devices)."""
    _check_known(params, {"identifier", "_count", "_offset"})
    ident = _one(params, "identifier")
    if ident is None:
        return None
    if "|" in ident:
        system, _, value = ident.partition("|")
        if system not in ("", THING_IDENTIFIER_SYSTEM) or not value:
            raise SearchError(f"identifier system must be {THING_IDENTIFIER_SYSTEM}")
        return value
    return ident


def searchset(
    *,
    base_url: str,
    resource_type: str,
    resources: list[dict[str, Any]],
    total: int,
    params: Sequence[tuple[str, str]],
    paging: Paging,
) -> dict[str, Any]:
    """A searchset Bundle with ``self`` and (when more remain) ``next`` links."""
    kept = [(k, v) for k, v in params if k not in {"_offset", "_count"}]

    def link(offset: int) -> str:
        query = urlencode([*kept, ("_count", str(paging.count)), ("_offset", str(offset))])
        return f"{base_url}/fhir/{resource_type}?{query}"

    links = [{"relation": "self", "url": link(paging.offset)}]
    if paging.offset + len(resources) < total:
        links.append({"relation": "next", "url": link(paging.offset + paging.count)})
    if paging.offset > 0:
        links.append({"relation": "previous", "url": link(max(0, paging.offset - paging.count))})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base_url}/fhir/{resource_type}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def capability_statement(base_url: str, version: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2024-01-01",
        "kind": "instance",
        "software": {"name": "Lantern", "version": version},
        "implementation": {"description": "Lantern FHIR read API", "url": f"{base_url}/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Bearer token: the admin token or a project fhir:read token"
                },
                "resource": [
                    {
                        "type": "Observation",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "patient", "type": "reference"},
                            {"name": "subject", "type": "reference"},
                            {"name": "device", "type": "reference"},
                            {"name": "code", "type": "token"},
                            {"name": "date", "type": "date"},
                        ],
                    },
                    {
                        "type": "Device",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [{"name": "identifier", "type": "token"}],
                    },
                ],
            }
        ],
    }
