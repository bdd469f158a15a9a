"""The cached FHIR validation of observations gives the same verdict as validating every
resource: for any accepted payload from any device, the stored JSON is a valid FHIR Observation,
and a payload is refused exactly when the resource built from it would not validate."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fhir.resources.R4B.observation import Observation
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lantern.ingest.errors import PayloadRejected
from lantern.ingest.observation import (
    Coding,
    ObservationInput,
    new_observation_id,
    observation_json,
)

thing_names = st.from_regex(r"\A[a-zA-Z0-9:_-]{1,128}\Z")
patient_ids = st.none() | st.from_regex(r"\A[A-Za-z0-9\-.]{1,64}\Z")
# Any text, including what FHIR refuses (leading/trailing or only whitespace, control chars).
texts = st.text(min_size=1, max_size=40)
codings = st.lists(
    st.builds(Coding, system=texts, code=texts, display=st.none() | texts),
    min_size=1,
    max_size=3,
).map(tuple)
values = st.integers(-(10**17), 10**17) | st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(thing=thing_names, patient=patient_ids, unit=texts, coding=codings, value=values)
def test_cached_validation_agrees_with_validating_the_resource(
    thing: str, patient: str | None, unit: str, coding: tuple[Coding, ...], value: float
) -> None:
    obs = ObservationInput(
        value=value, unit=unit, coding=coding, patient_id=patient, effective=None
    )
    received = datetime.now(UTC)
    try:
        text = observation_json(
            obs, observation_id=new_observation_id(), thing_name=thing, received=received
        )
    except PayloadRejected:
        text = None
    # The parts that come from the payload, validated in full, uncached.
    resource = {
        "resourceType": "Observation",
        "id": new_observation_id(),
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
        "valueQuantity": {"value": value, "unit": unit},
    }
    try:
        Observation.model_validate(resource)
        valid = True
    except (ValidationError, ValueError):
        valid = False
    if text is None:
        assert not valid
    else:
        stored = json.loads(text)
        Observation.model_validate(stored)  # raises if the stored resource is not valid FHIR
        assert stored["device"]["reference"].startswith("Device/")
        if patient is not None:
            assert stored["subject"]["reference"] == f"Patient/{patient}"
