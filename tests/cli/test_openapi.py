"""``/openapi.json`` and ``/docs`` of a running server: bearer security schemes that ``/docs``
can authorize with, ``POST /push`` documented, unique operation ids, and Swagger UI served by
Lantern itself (no CDN: hospital networks are often closed)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx

from cli.conftest import Fleet


def schema_of(fleet: Fleet) -> dict[str, Any]:
    answer = httpx.get(f"{fleet.server.http_url}/openapi.json", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def test_operation_ids_are_unique(fleet: Fleet) -> None:
    ops = operations(schema_of(fleet))
    counts = Counter(op["operationId"] for op in ops.values())
    assert [name for name, n in counts.items() if n > 1] == []
    image = "/v1/firmware/{firmware_id}/image"
    assert ops[("GET", image)]["operationId"].endswith("_get")
    assert ops[("HEAD", image)]["operationId"].endswith("_head")


def test_bearer_security_schemes_and_which_routes_need_them(fleet: Fleet) -> None:
    schema = schema_of(fleet)
    schemes = schema["components"]["securitySchemes"]
    for name in ("adminToken", "pushApiKey", "fhirToken"):
        assert schemes[name]["type"] == "http" and schemes[name]["scheme"] == "bearer", name
        assert schemes[name]["description"]
    assert "admin-token" in schemes["adminToken"]["description"]
    ops = operations(schema)
    for key in [("GET", "/v1/things"), ("POST", "/v1/deployments"), ("GET", "/v1/audit")]:
        assert ops[key]["security"] == [{"adminToken": []}], key
    assert ops[("POST", "/schedules")]["security"] == [{"pushApiKey": []}]
    assert {"fhirToken": []} in ops[("GET", "/fhir/Observation")]["security"]
    assert {"adminToken": []} in ops[("GET", "/fhir/Observation")]["security"]
    assert "security" not in ops[("GET", "/healthz")]


def test_push_is_documented(fleet: Fleet) -> None:
    push = operations(schema_of(fleet))[("POST", "/push")]
    assert push["security"] == [{"pushApiKey": []}]
    body = push["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["device_token", "payload"]
    assert {"200", "400", "401", "403", "429", "503"} <= set(push["responses"])


def test_an_authorized_call_works_as_docs_would_send_it(fleet: Fleet) -> None:
    """What /docs sends after *Authorize* with the admin token: Authorization: Bearer <token>."""
    token = (fleet.server.data_dir / "admin-token").read_text().strip()
    url = f"{fleet.server.http_url}/v1/things"
    assert httpx.get(url, timeout=10).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["things"]


def test_docs_page_uses_only_local_assets(fleet: Fleet) -> None:
    base = fleet.server.http_url
    page = httpx.get(f"{base}/docs", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert "SwaggerUIBundle" in html
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""", html)
    found = [a or b for a, b in urls]
    assert len(found) >= 4, found  # the script, the stylesheet, the icon, the schema
    assert not re.search(r"https?://", html), "the page names an outside address"
    assert '"validatorUrl": null' in html  # no online validator badge either
    for url in found:
        assert url.startswith("/"), url
        answer = httpx.get(f"{base}{url}", timeout=10)
        assert answer.status_code == 200, url
        assert len(answer.content) > 100, url
    assert any(u.endswith("swagger-ui-bundle.js") for u in found)
    assert any(u.endswith("swagger-ui.css") for u in found)
