"""Over HTTPS the console's cookies are Secure (and always HttpOnly, SameSite=Strict); the
`lantern operators` commands, their errors included. No browser needed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from console.conftest import admin_token, lantern
from support.process import LanternProcess


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    data_dir = tmp_path_factory.mktemp("console-tls") / "lantern-data"
    with LanternProcess(data_dir, env={"LANTERN_HTTP__TLS": "true"}).start(timeout=90) as proc:
        yield proc


def _cookie_header(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert found, f"no {name} cookie in {response.headers.get_list('set-cookie')}"
    return found[0]


def test_cookies_are_secure_over_https(tls_server: LanternProcess) -> None:
    with httpx.Client(base_url=tls_server.http_url, verify=tls_server.http_verify()) as http:
        form = http.get("/console/sign-in")
        pre = _cookie_header(form, "lantern_console_signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        signed = http.post(
            "/console/sign-in",
            data={"csrf": csrf.group(1), "mode": "token", "token": admin_token(tls_server)},
        )
        assert signed.status_code == 303
        session = _cookie_header(signed, "lantern_console")
        for header in (pre, session):
            attributes = {a.strip().lower() for a in header.split(";")[1:]}
            assert {"secure", "httponly", "samesite=strict", "path=/console"} <= attributes
        page = http.get("/console/devices")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_sign_in_without_its_form_token_is_refused(tls_server: LanternProcess) -> None:
    with httpx.Client(base_url=tls_server.http_url, verify=tls_server.http_verify()) as http:
        answer = http.post(
            "/console/sign-in", data={"mode": "token", "token": admin_token(tls_server)}
        )
        assert answer.status_code == 403
        assert "lantern_console=" not in answer.headers.get("set-cookie", "")


def test_operators_commands(tls_server: LanternProcess, tmp_path: Path) -> None:
    bad_role = lantern(tls_server, "operators", "create", "x", "--role", "root", stdin="pw\n")
    assert bad_role.returncode == 1 and "admin, operator, viewer" in bad_role.stderr
    short = lantern(tls_server, "operators", "create", "ops", "--role", "operator", stdin="pw\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    made = lantern(
        tls_server, "operators", "create", "ops", "--role", "operator", stdin="long password 1\n"
    )
    assert made.returncode == 0 and "ops" in made.stdout
    again = lantern(
        tls_server, "operators", "create", "ops", "--role", "viewer", stdin="long password 1\n"
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    listed = json.loads(lantern(tls_server, "operators", "list", "--json").stdout)
    assert listed == [
        {
            "name": "ops",
            "role": "operator",
            "disabled": False,
            "createdAt": listed[0]["createdAt"],
            "disabledAt": None,
        }
    ]
    assert "password" not in json.dumps(listed)
    disabled = lantern(tls_server, "operators", "disable", "ops")
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    table = lantern(tls_server, "operators", "list").stdout
    assert "ops" in table and "disabled" in table
    missing = lantern(tls_server, "operators", "disable", "nobody")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    elsewhere = lantern(tls_server, "operators", "list", "--data-dir", str(tmp_path / "none"))
    assert elsewhere.returncode == 2
