"""The FHIRIngest payload (docs/device-topics.md): validation and the FHIR R4 Observation built
from it.

:func:`parse_observation` turns raw bytes into an :class:`ObservationInput` or raises
:class:`PayloadRejected` naming the offending field; :func:`build_observation` makes the FHIR
resource, validated with ``fhir.resources`` (R4B models, which R4 clients read unchanged).
:func:`observation_json` is the same resource serialized straight to JSON text (the ingest hot
path: cached fragments instead of a dict walked by ``json.dumps``), with the same validation.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from lantern import jsonlimits
from lantern.ingest.errors import PayloadRejected
from lantern.ingest.fhir import device_fhir_id
from lantern.jsonlimits import JSONTooDeep

_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
# FHIR id: [A-Za-z0-9\-\.]{1,64}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# ISO 8601 date-time with seconds and an explicit offset (FHIR dateTime with time needs one).
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
MAX_CODINGS = 16


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None


@dataclass(frozen=True, slots=True)
class ObservationInput:
    value: int | float
    unit: str
    coding: tuple[Coding, ...]
    patient_id: str | None
    effective: datetime | None


def _reject(field: str, message: str, code: str = "InvalidPayload") -> PayloadRejected:
    return PayloadRejected(field=field, error_code=code, message=message)


def _parse_value(raw: object) -> int | float:
    # bool is an int in Python but not a number in JSON.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _reject("value", "value must be a number or a string holding a decimal number")
    if isinstance(raw, str):
        text = raw.strip()
        match = _DECIMAL.match(text)
        if match is None:
            raise _reject("value", f"value {raw[:32]!r} is not a decimal number")
        whole, fraction, exponent = match.groups()
        value: int | float
        if exponent is None and (fraction is None or not fraction.strip(".0")):
            # An integer, possibly written "100.00": kept exact as an int.
            if len(whole) >= 19:  # >= 10**18, and int() of huge strings is costly
                raise _reject("value", "value is too large")
            value = int(whole) * (-1 if text.startswith("-") else 1)
        else:
            value = float(text)  # correctly rounded, as float(Decimal(text)) is
    else:
        value = raw
    if isinstance(value, float) and not math.isfinite(value):
        raise _reject("value", "value must be a finite number")
    if isinstance(value, int) and abs(value) >= 10**18:
        raise _reject("value", "value is too large")
    return value


def _parse_string(
    obj: dict[str, Any], field: str, path: str, *, required: bool, max_len: int
) -> str | None:
    raw = obj.get(field)
    if raw is None:
        if required:
            raise _reject(path, f"{path} is required", "MissingField")
        return None
    if not isinstance(raw, str):
        raise _reject(path, f"{path} must be a string")
    if required and not raw.strip():
        raise _reject(path, f"{path} must not be empty")
    if len(raw) > max_len:
        raise _reject(path, f"{path} must be at most {max_len} characters")
    return raw


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _parse_coding(raw: object) -> tuple[Coding, ...]:
    if raw is None:
        raise _reject("coding", "coding is required", "MissingField")
    if not isinstance(raw, list):
        raise _reject("coding", "coding must be an array of {code, system, display}")
    if not raw:
        raise _reject("coding", "coding must hold at least one {code, system}")
    if len(raw) > MAX_CODINGS:
        raise _reject("coding", f"coding holds more than {MAX_CODINGS} entries")
    result = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _reject(f"coding[{i}]", f"coding[{i}] must be an object")
        code = _parse_string(item, "code", f"coding[{i}].code", required=True, max_len=256)
        system = _parse_string(item, "system", f"coding[{i}].system", required=True, max_len=512)
        display = _parse_string(
            item, "display", f"coding[{i}].display", required=False, max_len=1024
        )
        assert code is not None and system is not None
        for name, text in (("code", code), ("system", system)):
            if _CONTROL.search(text):  # FHIR code and uri values hold no control characters
                path = f"coding[{i}].{name}"
                raise _reject(path, f"{path} must not contain control characters")
        result.append(Coding(system=system, code=code, display=display or None))
    return tuple(result)


def parse_observation(payload: bytes, *, max_bytes: int) -> ObservationInput:
    """Validate a FHIRIngest payload per docs/device-topics.md; raises :class:`PayloadRejected`."""
    if len(payload) > max_bytes:
        raise _reject("payload", f"payload is larger than {max_bytes} bytes", "PayloadTooLarge")
    try:
        doc = jsonlimits.loads(payload, decoder=_DECODER)
    except JSONTooDeep as exc:
        raise _reject("payload", f"payload is {exc}", "InvalidJson") from None
    except ValueError:  # UnicodeDecodeError is one
        raise _reject("payload", "payload is not valid JSON", "InvalidJson") from None
    if not isinstance(doc, dict):
        raise _reject("payload", "payload must be a JSON object")
    if "value" not in doc or doc["value"] is None:
        raise _reject("value", "value is required", "MissingField")
    value = _parse_value(doc["value"])
    unit = _parse_string(doc, "unit", "unit", required=True, max_len=64)
    assert unit is not None
    coding = _parse_coding(doc.get("coding"))
    patient_id = _parse_string(doc, "patientId", "patientId", required=False, max_len=64)
    if patient_id is not None and not _FHIR_ID.match(patient_id):
        raise _reject("patientId", "patientId must be 1-64 of letters, digits, '-' and '.'")
    effective = None
    raw_eff = _parse_string(
        doc, "effectiveDateTime", "effectiveDateTime", required=False, max_len=64
    )
    if raw_eff is not None:
        if not _DATETIME.match(raw_eff):
            raise _reject(
                "effectiveDateTime",
                "effectiveDateTime must be an ISO 8601 date-time with an offset, "
                "e.g. 2024-05-01T12:00:00+02:00",
            )
        try:
            effective = datetime.fromisoformat(raw_eff.replace("Z", "+00:00"))
        except ValueError:
            raise _reject("effectiveDateTime", "effectiveDateTime is not a valid date") from None
    return ObservationInput(
        value=value, unit=unit, coding=coding, patient_id=patient_id, effective=effective
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every payload: json.loads(..., parse_constant=...) would build one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _instant(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


def build_observation(
    obs: ObservationInput, *, observation_id: str, thing_name: str, received: datetime
) -> dict[str, Any]:
    """The FHIR R4 Observation (as a JSON-ready dict), validated with ``fhir.resources``."""
    effective = obs.effective or received
    coding = [
        {"system": c.system, "code": c.code, **({"display": c.display} if c.display else {})}
        for c in obs.coding
    ]
    code: dict[str, Any] = {"coding": coding}
    first_display = next((c.display for c in obs.coding if c.display), None)
    if first_display:
        code["text"] = first_display
    device_ref = {"reference": f"Device/{device_fhir_id(thing_name)}"}
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id,
        "meta": {"lastUpdated": _instant(received)},
        "status": "final",
        "code": code,
        "subject": {"reference": f"Patient/{obs.patient_id}"} if obs.patient_id else device_ref,
        "effectiveDateTime": effective.isoformat(),
        "issued": _instant(received),
        "valueQuantity": {"value": obs.value, "unit": obs.unit},
        "device": device_ref,
    }
    error = _fhir_error(obs.patient_id is not None, obs.unit, obs.coding)
    if error is not None:
        # Reachable only through content our own checks let through: report it as a bad payload
        # rather than a server error.
        raise _reject("payload", f"the observation is not valid FHIR: {error}")
    return resource


@functools.lru_cache(maxsize=4096)
def _fhir_error(has_patient: bool, unit: str, coding: tuple[Coding, ...]) -> str | None:
    """Validate, with ``fhir.resources``, an Observation holding exactly this unit and coding.

    Everything else in the resource is generated or checked by this module and is always valid:
    the id (a UUID), the instants (isoformat), the value (a finite number), the patient id
    (checked against FHIR's id pattern by :func:`parse_observation`) and the Device id
    (:func:`~lantern.ingest.fhir.device_fhir_id` always makes a valid one). So the outcome
    depends only on the arguments, which a fleet repeats (a few codings and units per device
    model): validating once per distinct combination (cached) gives the same guarantee as
    validating every resource, at a fraction of the CPU cost, however many devices and
    patients there are.
    """
    device_ref = "Device/sample-device"
    sample = {
        "resourceType": "Observation",
        "id": "sample",
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": c.system,
                    "code": c.code,
                    **({"display": c.display} if c.display else {}),
                }
                for c in coding
            ]
        },
        "subject": {"reference": "Patient/sample-patient" if has_patient else device_ref},
        "effectiveDateTime": "2024-01-01T00:00:00+00:00",
        "issued": "2024-01-01T00:00:00.000+00:00",
        "valueQuantity": {"value": 1.5, "unit": unit},
        "device": {"reference": device_ref},
    }
    try:
        Observation.model_validate(sample)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else None
        if first is None:
            return "invalid"
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    except ValueError as exc:
        return str(exc).splitlines()[0] if str(exc) else "invalid"
    return None


def new_observation_id() -> str:
    """A UUID version 7 (RFC 9562): time-ordered, so new rows append to the end of the id index
    instead of landing on random pages (cheaper inserts in a large table), and still unique
    (74 random bits per millisecond)."""
    ms = f"{time.time_ns() // 1_000_000:012x}"
    r = os.urandom(10).hex()
    variant = "89ab"[int(r[3], 16) & 3]
    return f"{ms[:8]}-{ms[8:]}-7{r[:3]}-{variant}{r[4:7]}-{r[8:]}"


@functools.lru_cache(maxsize=4096)
def _code_json(coding: tuple[Coding, ...]) -> str:
    coding_list = [
        {"system": c.system, "code": c.code, **({"display": c.display} if c.display else {})}
        for c in coding
    ]
    code: dict[str, Any] = {"coding": coding_list}
    first_display = next((c.display for c in coding if c.display), None)
    if first_display:
        code["text"] = first_display
    return json.dumps(code, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def _reference_json(reference: str) -> str:
    return json.dumps({"reference": reference}, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def _string_json(text: str) -> str:
    return json.dumps(text)


def observation_json(
    obs: ObservationInput, *, observation_id: str, thing_name: str, received: datetime
) -> str:
    """:func:`build_observation` serialized (compact JSON, same keys in the same order), built
    from cached fragments. Raises :class:`PayloadRejected` exactly when it does."""
    device_ref = f"Device/{device_fhir_id(thing_name)}"
    error = _fhir_error(obs.patient_id is not None, obs.unit, obs.coding)
    if error is not None:
        raise _reject("payload", f"the observation is not valid FHIR: {error}")
    device = _reference_json(device_ref)
    subject = _reference_json(f"Patient/{obs.patient_id}") if obs.patient_id else device
    issued = _instant(received)
    effective = (obs.effective or received).isoformat()
    # The id is generated (UUID) and the instants are isoformat output: no escaping needed.
    return (
        f'{{"resourceType":"Observation","id":"{observation_id}",'
        f'"meta":{{"lastUpdated":"{issued}"}},"status":"final",'
        f'"code":{_code_json(obs.coding)},"subject":{subject},'
        f'"effectiveDateTime":"{effective}","issued":"{issued}",'
        f'"valueQuantity":{{"value":{obs.value!r},"unit":{_string_json(obs.unit)}}},'
        f'"device":{device}}}'
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
