"""A FHIR-speaking stand-in server: accepts ``PUT /Observation/<id>``, can fail on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class FhirStandIn:
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before succeeding
    auth_seen: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.put("/fhir/Observation/{oid}")
        async def put(oid: str, request: Request) -> JSONResponse:
            self.auth_seen.append(request.headers.get("authorization", ""))
            if self.fail_next:
                return JSONResponse(
                    {"resourceType": "OperationOutcome"}, status_code=self.fail_next.pop(0)
                )
            body = await request.json()
            assert body["resourceType"] == "Observation" and body["id"] == oid
            created = oid not in self.stored
            self.stored[oid] = body
            return JSONResponse(body, status_code=201 if created else 200)

        return app
