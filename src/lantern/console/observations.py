"""Reading stored FHIR Observations for display: the code, value and time of each, and the
points of one chart per code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

__all__ = ["ObservationRow", "chart_series", "observation_row"]


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: str
    thing: str
    code: str
    display: str
    value: str
    number: float | None
    at: float | None
    effective: str


def _epoch(text: str) -> float | None:
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def observation_row(resource: dict[str, Any]) -> ObservationRow:
    """The fields a table shows, from a stored Observation resource."""
    codings = (resource.get("code") or {}).get("coding") or [{}]
    coding = codings[0] if isinstance(codings[0], dict) else {}
    code = str(coding.get("code", ""))
    display = str(coding.get("display") or (resource.get("code") or {}).get("text") or code)
    number: float | None = None
    quantity = resource.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        number = float(quantity["value"])
        value = f"{quantity['value']} {quantity.get('unit', '')}".strip()
    elif "valueString" in resource:
        value = str(resource["valueString"])
    elif isinstance(resource.get("valueInteger"), int):
        number = float(resource["valueInteger"])
        value = str(resource["valueInteger"])
    else:
        value = ""
    effective = str(resource.get("effectiveDateTime") or resource.get("issued") or "")
    device = (resource.get("device") or {}).get("reference", "")
    thing = device.split("/", 1)[1] if device.startswith("Device/") else device
    return ObservationRow(
        id=str(resource.get("id", "")),
        thing=thing,
        code=code,
        display=display,
        value=value,
        number=number,
        at=_epoch(effective) if effective else None,
        effective=effective,
    )


def chart_series(rows: list[ObservationRow]) -> list[tuple[str, str, list[list[float]]]]:
    """One ``(code, display, [[time, value], ...])`` per code with numeric values, oldest
    point first."""
    by_code: dict[str, tuple[str, list[list[float]]]] = {}
    for row in rows:
        if row.number is None or row.at is None:
            continue
        by_code.setdefault(row.code, (row.display, []))[1].append([row.at, row.number])
    return [(code, display, sorted(points)) for code, (display, points) in sorted(by_code.items())]
