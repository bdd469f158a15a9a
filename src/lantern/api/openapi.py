"""The OpenAPI schema (``/openapi.json``) and its browsable form (``/docs``).

- Security schemes: routes declare how they authenticate by depending on one of the
  :class:`~fastapi.security.HTTPBearer` objects below (``Security(ADMIN_TOKEN_SCHEME)``, …), so
  ``/docs`` has an *Authorize* button for each kind of bearer token. The objects only document:
  the routes' own checks (constant-time comparison, audit of failures) decide.
- ``POST /push`` is a plain ASGI route (see :class:`lantern.api.app.LanternApp`), outside
  FastAPI's router: its operation is added to the schema here (docs/push-api.md is the contract).
- Operation ids are unique: FastAPI gives every method of a multi-method route (``GET`` and
  ``HEAD``) the same id; the later ones get their method appended.
- ``/docs`` serves Swagger UI from the installed ``fastapi-offline`` package (Swagger UI's
  JavaScript and CSS, Apache-2.0, shipped in that MIT-licensed wheel): no CDN, no internet, so it
  works on closed hospital networks.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
STATIC_URL = "/docs/static"
STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI's ``swagger-ui-bundle.js`` and ``swagger-ui.css``, and a favicon."""

ADMIN_TOKEN_SCHEME = HTTPBearer(
    scheme_name="adminToken",
    description="The admin token: the file `admin-token` in the server's data directory.",
    auto_error=False,
)
PUSH_API_KEY_SCHEME = HTTPBearer(
    scheme_name="pushApiKey",
    description="An app gateway API key (`lantern keys create`; shown once).",
    auto_error=False,
)
FHIR_TOKEN_SCHEME = HTTPBearer(
    scheme_name="fhirToken",
    description="A FHIR read token (`lantern tokens create`) for its project.",
    auto_error=False,
)

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string"},
        "field": {"type": "string"},
        "reason": {"type": "string"},
        "id": {"type": "string"},
    },
    "required": ["error", "code"],
}
_PUSH_OPERATION: dict[str, Any] = {
    "tags": ["push"],
    "summary": "Send one notification",
    "description": "Relays one notification to APNs, FCM, email, SMS or Slack and records the "
    "delivery (never its content). The contract: docs/push-api.md; error codes: docs/errors.md.",
    "operationId": "push",
    "security": [{"pushApiKey": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "device_token": {
                            "type": "string",
                            "description": "<scheme>:<address>: apns:, gcm:/fcm:, mailto:, "
                            "sms:, slack:",
                            "examples": ["apns:3f2a…"],
                        },
                        "payload": {
                            "type": "object",
                            "description": "Passed to the provider (APNs: the aps document).",
                        },
                        "push_type": {
                            "type": "string",
                            "description": "ios, android, email, sms or slack (for a token "
                            "without a scheme prefix)",
                        },
                        "api_key": {
                            "type": "string",
                            "description": "The key, when no Authorization header is sent.",
                        },
                    },
                    "required": ["device_token", "payload"],
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "The provider accepted it.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "logged": {"type": "boolean"}},
                        "required": ["id"],
                    }
                }
            },
        },
        **{
            status: {
                "description": what,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            for status, what in {
                "400": "invalid_request / invalid_json (with field), provider_rejected",
                "401": "missing_api_key / invalid_api_key",
                "403": "scope_denied",
                "410": "dead_token: stop sending to this token",
                "413": "payload_too_large",
                "429": "rate_limited (Retry-After)",
                "502": "provider_failed after retries",
                "503": "provider_unavailable (reason NotConfigured: the error names the "
                "setting that enables the provider)",
            }.items()
        },
    },
}


def build_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with ``/push`` and unique operation ids."""
    with warnings.catch_warnings():
        # Made unique below: FastAPI warns, once per schema, about multi-method routes.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
    seen: set[str] = set()
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            operation_id = operation["operationId"]
            if operation_id in seen:
                # "image_..._head" for both GET and HEAD: the GET one becomes "image_..._get".
                stem, _, suffix = operation_id.rpartition("_")
                operation_id = f"{stem}_{method}" if suffix in item else f"{operation_id}_{method}"
                while operation_id in seen:
                    operation_id += "_"
                operation["operationId"] = operation_id
            seen.add(operation_id)
    if "/push" in getattr(app, "direct_routes", {}):  # LanternApp's front-door routes
        schema.setdefault("paths", {})["/push"] = {"post": _PUSH_OPERATION}
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = _ERROR
        components.setdefault("securitySchemes", {})["pushApiKey"] = (
            PUSH_API_KEY_SCHEME.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
    return schema


def install_docs(app: FastAPI) -> None:
    """Serve the schema (cached once built) and Swagger UI with local assets at ``/docs``.

    ``app`` is created with ``docs_url=None``: FastAPI's own page loads Swagger UI from a CDN.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
            oauth2_redirect_url=None,
            # No online validator badge: it would fetch validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
