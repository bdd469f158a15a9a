"""The web console in a real browser (Chromium, headless) against a real `lantern serve`, with
real devices (the repository's device client over mTLS MQTT; paho-mqtt)."""

from __future__ import annotations

import ssl
import threading
import time
import zipfile
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import expect

from console.conftest import Console, admin_token, lantern
from lantern.device import DeviceClient, Endpoint, provision, write_credentials
from lantern.device.ingest import observation_payload, upload_observation
from lantern.device.jobs import firmware_update
from support.process import LanternProcess

LOINC = "http://loinc.org"
PAGES = [
    ("overview", "/console", "Overview"),
    ("devices", "/console/devices", "Devices"),
    ("claims", "/console/claims", "Claims"),
    ("firmware", "/console/firmware", "Firmware and deployments"),
    ("observations", "/console/observations", "Observations"),
    ("files", "/console/files", "Files"),
    ("keys", "/console/keys", "API keys"),
    ("schedules", "/console/schedules", "Schedules"),
    ("deliveries", "/console/deliveries", "Push deliveries"),
]


@pytest.fixture(scope="module")
def claim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("claim")


def make_claim_in_console(console: Console, into: Path) -> dict[str, bytes]:
    """Create a claim with the form, download its zip; returns the zip's files."""
    console.goto("/console/claims")
    console.page.get_by_label("Description").fill("console test batch")
    console.page.get_by_role("button", name="Create claim").click()
    key = console.page.locator("#claim-key").inner_text()
    assert "PRIVATE KEY" in key
    with console.page.expect_download() as info:
        console.page.locator("#claim-download").click()
    path = into / info.value.suggested_filename
    info.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    for name, body in files.items():
        (into / name).write_bytes(body)
    return files


def provision_from(server: LanternProcess, claim: Path, out: Path, serial: str) -> str:
    """Provision a device with the claim files downloaded from the console (or, when that test
    did not run, made by `lantern claims create`); its thing name."""
    if not (claim / "ca.pem").exists():
        made = lantern(
            server,
            "claims",
            "create",
            "--template",
            "DefaultProvisioningTemplate",
            "--out",
            str(claim),
        )
        assert made.returncode == 0, made.stderr
    cert = next(p for p in claim.glob("*.pem") if p.name != "ca.pem")
    result = provision(
        Endpoint("localhost", server.mqtt_port),
        ca_file=claim / "ca.pem",
        claim_cert=cert,
        claim_key=cert.with_suffix(".key"),
        parameters={"SerialNumber": serial, "Manufacturer": "acme", "Name": "n", "Model": "m1"},
    )
    write_credentials(result, out, claim / "ca.pem")
    return result.thing_name


def test_sign_in_refuses_a_wrong_token_and_signs_out(server, console_factory) -> None:
    console = console_factory()
    console.goto("/console/devices")
    assert console.page.url.endswith("/console/sign-in")  # signed out: sent to sign in
    console.sign_in_token("not-the-token")
    assert "Wrong admin token." in console.page.locator("#signin-error").inner_text()
    assert console.page.url.endswith("/console/sign-in")
    console.shot("sign-in-refused")
    failed = httpx.get(
        server.http_url + "/v1/audit", params={"action": "auth.failed"}, headers=_admin(server)
    ).json()["entries"]
    assert "POST /console/sign-in" in [e["target"] for e in failed]

    console.sign_in_token(admin_token(server))
    console.page.get_by_role("heading", name="Overview").wait_for()
    cookie = next(c for c in console.page.context.cookies() if c["name"] == "lantern_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    console.page.get_by_role("button", name="Sign out").click()
    console.page.get_by_role("heading", name="Lantern console").wait_for()
    console.goto("/console")
    assert console.page.url.endswith("/console/sign-in")


def test_claim_is_created_and_downloaded_as_a_zip(server, console_factory, claim_dir) -> None:
    console = console_factory()
    console.sign_in_token(admin_token(server))
    files = make_claim_in_console(console, claim_dir)
    names = sorted(files)
    assert names[0] == "ca.pem" and len(names) == 3
    cert_name = next(n for n in names if n.endswith(".pem") and n != "ca.pem")
    assert b"BEGIN CERTIFICATE" in files[cert_name]
    assert b"PRIVATE KEY" in files[cert_name.replace(".pem", ".key")]
    assert files["ca.pem"] == (server.data_dir / "ca" / "ca.pem").read_bytes()
    console.shot("claim-created")
    # The zip is handed out once.
    href = console.page.locator("#claim-download").get_attribute("href")
    assert href
    again = console.page.request.get(console.url(href))
    assert again.status == 404
    # The downloaded claim provisions a real device, and the claims page counts it.
    thing = provision_from(server, claim_dir, claim_dir / "dev1", "1001")
    console.goto("/console/claims")
    row = console.page.locator("tr", has_text="console test batch")
    assert row.locator("td.num").inner_text().startswith("1")
    console.goto("/console/devices")
    console.page.get_by_role("link", name=thing).wait_for()
    assert not console.errors, console.errors


def test_every_page_renders_without_errors(server, console_factory, artifacts) -> None:
    console = console_factory()
    console.sign_in_token(admin_token(server))
    # Keyboard: the first Tab reaches "Skip to content", which moves the focus to the page.
    # (Sequential focus starts at the top of the document once nothing holds the focus.)
    console.page.wait_for_load_state("load")
    console.page.evaluate("document.activeElement && document.activeElement.blur()")
    console.page.keyboard.press("Tab")
    focused = console.page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Skip to content"
    console.page.keyboard.press("Enter")
    assert console.page.evaluate("document.activeElement.id") == "main"
    for name, path, heading in PAGES:
        console.goto(path)
        console.page.get_by_role("heading", name=heading, exact=True).wait_for()
        console.shot(f"page-{name}")
    console.page.wait_for_timeout(2500)  # one overview poll, charts drawn
    console.goto("/console")
    console.page.wait_for_selector(".chart[data-live=connected] canvas", timeout=10_000)
    console.shot("page-overview-charts")
    tablet = console_factory(width=820, height=1180)
    tablet.sign_in_token(admin_token(server))
    tablet.goto("/console/devices")
    tablet.shot("tablet-devices")
    assert not console.errors and not tablet.errors, console.errors + tablet.errors
    assert len(list(artifacts.glob("*.png"))) >= len(PAGES)


def test_firmware_upload_and_deployment_reach_100_percent(
    server, console_factory, claim_dir, tmp_path
) -> None:
    thing = provision_from(server, claim_dir, tmp_path / "dev", "2002")
    console = console_factory()
    console.sign_in_token(admin_token(server))
    console.goto("/console/firmware")
    image = tmp_path / "fw.bin"
    image.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    console.page.get_by_label("Image file").set_input_files(str(image))
    console.page.get_by_label("Version").fill("2.0.0")
    console.page.get_by_role("button", name="Upload").click()
    console.page.get_by_text("uploaded.").wait_for()
    console.page.get_by_role("cell", name="2.0.0").wait_for()
    console.shot("firmware-uploaded")

    console.page.get_by_label("Things").fill(thing)
    console.page.get_by_role("button", name="Create deployment").click()
    console.page.get_by_role("heading", name="Deployment").wait_for()
    console.page.evaluate("window.__notReloaded = true")
    console.shot("deployment-created")

    outcome: list[object] = []

    def device() -> None:
        files = tmp_path / "dev"
        with DeviceClient(
            Endpoint("localhost", server.mqtt_port),
            ca_file=files / "ca.pem",
            cert_file=files / f"{thing}.pem",
            key_file=files / f"{thing}.key",
            client_id=thing,
        ) as client:
            for value in (61, 64, 70):
                body = observation_payload(value, "beats/min", "8867-4", LOINC, "Heart rate")
                upload_observation(client, thing, body)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                result = firmware_update(client, thing, tmp_path / "installed.bin")
                if result.status != "NONE":
                    outcome.append(result.status)
                    return
                time.sleep(0.2)

    runner = threading.Thread(target=device)
    runner.start()
    expect(console.page.locator("#deployment-percent")).to_have_text("100", timeout=30_000)
    runner.join(30)
    assert outcome == ["SUCCEEDED"]
    assert console.page.evaluate("window.__notReloaded") is True  # updated without a reload
    assert console.page.locator("[data-count=SUCCEEDED]").inner_text() == "1"
    assert (tmp_path / "installed.bin").read_bytes() == image.read_bytes()
    expect(console.page.locator("#deployment-status")).to_have_text("COMPLETED")
    console.shot("deployment-finished")
    # The device page: its job execution, its observations and a chart of their code.
    console.page.get_by_role("link", name=thing).click()
    console.page.get_by_role("heading", name="Job executions").wait_for()
    assert console.page.locator("td.status-SUCCEEDED").count() == 1
    assert console.page.get_by_role("cell", name="64 beats/min").count() == 1
    console.page.wait_for_selector(".chart[data-label='Heart rate'] canvas")
    console.shot("device-page")
    assert console.page.get_by_role("button", name="Cancel").count() == 0  # nothing to cancel

    # A second deployment nobody runs is canceled from its page.
    console.goto("/console/firmware")
    console.page.get_by_label("Things").fill(thing)
    console.page.get_by_role("button", name="Create deployment").click()
    console.page.get_by_role("button", name="Cancel").click()  # the dialog is accepted
    expect(console.page.locator("#deployment-status")).to_have_text("CANCELED")
    console.shot("deployment-canceled")
    assert not console.errors, console.errors


def test_api_key_secret_is_shown_once_then_rotated_and_revoked(server, console_factory) -> None:
    console = console_factory()
    console.sign_in_token(admin_token(server))
    console.goto("/console/keys")
    console.page.get_by_label("Name").fill("study-server")
    console.page.get_by_label("Scope").select_option("external")
    console.page.get_by_role("button", name="Create key").click()
    secret = console.page.locator("#key-secret").inner_text().strip()
    # The secret authenticates /push (a 503/400 answer, never 401), and is not shown again.
    answer = httpx.post(
        server.http_url + "/push", headers={"Authorization": f"Bearer {secret}"}, json={}
    )
    assert answer.status_code != 401
    console.goto("/console/keys")
    assert console.page.locator("#key-secret").count() == 0
    console.page.get_by_role("button", name="Rotate").click()
    rotated = console.page.locator("#key-secret").inner_text().strip()
    assert rotated != secret
    old = httpx.post(
        server.http_url + "/push", headers={"Authorization": f"Bearer {secret}"}, json={}
    )
    assert old.status_code == 401
    console.page.get_by_role("button", name="Revoke").click()
    console.page.get_by_text("revoked.").wait_for()
    new = httpx.post(
        server.http_url + "/push", headers={"Authorization": f"Bearer {rotated}"}, json={}
    )
    assert new.status_code == 401
    console.shot("keys")
    assert not console.errors, console.errors


def test_revoking_a_device_drops_its_mqtt_connection(
    server, console_factory, claim_dir, tmp_path
) -> None:
    thing = provision_from(server, claim_dir, tmp_path / "dev", "3003")
    files = tmp_path / "dev"
    connected, dropped = threading.Event(), threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=thing)
    client.tls_set(
        ca_certs=str(files / "ca.pem"),
        certfile=str(files / f"{thing}.pem"),
        keyfile=str(files / f"{thing}.key"),
        cert_reqs=ssl.CERT_REQUIRED,
    )
    client.on_connect = lambda *a: connected.set()
    client.on_disconnect = lambda *a: dropped.set()
    client.connect("localhost", server.mqtt_port)
    client.loop_start()
    try:
        assert connected.wait(10)
        console = console_factory()
        console.sign_in_token(admin_token(server))
        # The list's filters: online now, seen in the last 5 minutes, by attribute-less name.
        console.goto(f"/console/devices?q={thing[:6]}&online=yes&seen=5")
        console.page.get_by_role("link", name=thing).wait_for()
        console.goto("/console/devices?online=no")
        assert console.page.get_by_role("link", name=thing).count() == 0
        console.goto(f"/console/devices/{thing}")
        console.page.get_by_text("online", exact=True).wait_for()
        console.page.get_by_role("button", name="Revoke").click()  # the dialog is accepted
        console.page.get_by_text("is now REVOKED").wait_for()
        assert dropped.wait(5), "the revoked device is still connected"
        console.shot("device-revoked")
        assert not console.errors, console.errors
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_viewer_can_change_nothing(server, console_factory) -> None:
    made = lantern(
        server, "operators", "create", "vera", "--role", "viewer", stdin="a-long-password-1\n"
    )
    assert made.returncode == 0, made.stderr
    listed = lantern(server, "operators", "list", "--json")
    assert '"role": "viewer"' in listed.stdout
    console = console_factory()
    console.sign_in_password("vera", "a-long-password-1")
    console.page.get_by_role("heading", name="Overview").wait_for()
    console.goto("/console/claims")
    assert console.page.get_by_role("button", name="Create claim").count() == 0
    assert console.page.get_by_role("button", name="Revoke").count() == 0
    console.goto("/console/firmware")
    assert console.page.get_by_role("button", name="Upload").count() == 0
    console.shot("viewer-claims")
    # A crafted request with this session's own CSRF token is still refused.
    csrf = console.csrf()
    before = len(httpx.get(server.http_url + "/v1/claims", headers=_admin(server)).json()["claims"])
    answer = console.page.request.post(
        console.url("/console/claims"),
        form={"csrf": csrf, "template": "DefaultProvisioningTemplate"},
    )
    assert answer.status == 403
    after = len(httpx.get(server.http_url + "/v1/claims", headers=_admin(server)).json()["claims"])
    assert after == before
    audit = httpx.get(
        server.http_url + "/v1/audit", params={"actor": "operator:vera"}, headers=_admin(server)
    ).json()["entries"]
    assert [(e["action"], e["outcome"]) for e in audit] == [
        ("console.denied", "denied"),
        ("console.sign_in", "ok"),
    ]
    assert not console.errors, console.errors


def test_state_changes_without_the_csrf_token_are_refused(server, console_factory) -> None:
    console = console_factory()
    console.sign_in_token(admin_token(server))
    console.goto("/console/claims")
    form = {"template": "DefaultProvisioningTemplate", "description": "csrf probe"}
    missing = console.page.request.post(console.url("/console/claims"), form=form)
    wrong = console.page.request.post(
        console.url("/console/claims"), form={**form, "csrf": "not-the-token"}
    )
    assert missing.status == 403 and wrong.status == 403
    huge = console.page.request.post(
        console.url("/console/claims"), form={**form, "description": "x" * 70_000}
    )
    assert huge.status == 413
    claims = httpx.get(server.http_url + "/v1/claims", headers=_admin(server)).json()["claims"]
    assert not [c for c in claims if c["description"] == "csrf probe"]
    # The right token works (the refusals were about the token, not the form).
    right = console.page.request.post(
        console.url("/console/claims"), form={**form, "csrf": console.csrf()}
    )
    assert right.status == 200
    # Recorded in the audit log as the console's user, like the same action from the CLI.
    audit = httpx.get(
        server.http_url + "/v1/audit", params={"action": "claim.create"}, headers=_admin(server)
    ).json()["entries"]
    assert audit[0]["actor"] == "admin-token" and audit[0]["outcome"] == "ok"


def _admin(server: LanternProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token(server)}"}


def test_templates_and_claims_are_changed_from_the_claims_page(server, console_factory) -> None:
    console = console_factory()
    console.sign_in_token(admin_token(server))
    console.goto("/console/claims")
    console.page.get_by_label("Description").fill("to revoke")
    console.page.get_by_role("button", name="Create claim").click()
    console.goto("/console/claims")
    row = console.page.locator("tr", has_text="to revoke")
    row.get_by_role("button", name="Revoke").click()  # the dialog is accepted
    console.page.get_by_text("revoked: devices can no longer use it").wait_for()
    claims = httpx.get(server.http_url + "/v1/claims", headers=_admin(server)).json()["claims"]
    assert [c["revokedAt"] is not None for c in claims if c["description"] == "to revoke"] == [True]

    template = "/v1/templates/DefaultProvisioningTemplate"
    console.page.get_by_role("button", name="Disable").click()
    console.page.get_by_text("Template DefaultProvisioningTemplate disabled.").wait_for()
    assert httpx.get(server.http_url + template, headers=_admin(server)).json()["enabled"] is False
    console.page.get_by_role("button", name="Enable").click()
    console.page.get_by_text("Template DefaultProvisioningTemplate enabled.").wait_for()
    console.page.get_by_label("Hook URL of DefaultProvisioningTemplate").fill("ftp://nope")
    console.page.get_by_role("button", name="Save hook").click()
    console.page.get_by_text("must be an http(s) URL").wait_for()  # refused, in the page
    console.page.get_by_label("Hook URL of DefaultProvisioningTemplate").fill("")
    console.page.get_by_role("button", name="Save hook").click()
    console.page.get_by_text("hook removed").wait_for()
    body = httpx.get(server.http_url + template, headers=_admin(server)).json()
    assert body["enabled"] is True and body["preProvisioningHookUrl"] is None
    console.shot("claims-after-changes")
    # The refused hook was answered 400: the browser reports that failed load, nothing else.
    assert [e for e in console.errors if "400" not in e] == []


def test_a_schedule_is_paused_and_resumed(server, console_factory) -> None:
    console = console_factory()
    console.sign_in_token(admin_token(server))
    console.goto("/console/keys")
    console.page.get_by_label("Name").fill("reminders")
    console.page.get_by_label("Scope").select_option("internal")
    console.page.get_by_role("button", name="Create key").click()
    secret = console.page.locator("#key-secret").inner_text().strip()
    made = httpx.post(
        server.http_url + "/schedules",
        headers={"Authorization": f"Bearer {secret}"},
        json={
            "activity_id": "walk",
            "participant_id": "p-1",
            "destinations": ["mailto:participant-1@example.org"],
            "title": "Walk",
            "message": "Time for a walk",
            "timezone": "Europe/London",
            "start": "2030-01-01T09:00:00",
            "repeat": "daily",
            "times": ["09:00"],
        },
    )
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]
    console.goto("/console/schedules")
    row = console.page.locator("tr", has_text=schedule_id)
    row.get_by_role("button", name="Pause").click()
    console.page.get_by_text(f"Schedule {schedule_id} is now paused.").wait_for()
    console.page.locator("tr", has_text=schedule_id).get_by_role("button", name="Resume").click()
    console.page.get_by_text(f"Schedule {schedule_id} is now active.").wait_for()
    console.page.get_by_role("link", name=schedule_id).click()
    console.page.get_by_role("heading", name="History").wait_for()
    assert "participant-1@example.org" not in console.page.content()  # destinations hidden
    console.shot("schedule")
    assert not console.errors, console.errors


def test_an_operator_account_made_in_the_console_cannot_touch_keys(server, console_factory) -> None:
    admin = console_factory()
    admin.sign_in_token(admin_token(server))
    admin.goto("/console/operators")
    admin.page.get_by_label("Name").fill("opal")
    admin.page.get_by_label("Role").select_option("operator")
    admin.page.get_by_label("Password").fill("opal-long-password")
    admin.page.get_by_role("button", name="Create operator").click()
    admin.page.get_by_text("Operator opal created (operator).").wait_for()
    admin.shot("page-operators")

    opal = console_factory()
    opal.sign_in_password("opal", "opal-long-password")
    opal.page.get_by_role("heading", name="Overview").wait_for()
    assert opal.page.get_by_role("link", name="Operators").count() == 0
    opal.goto("/console/claims")
    opal.page.get_by_label("Description").fill("made by opal")
    opal.page.get_by_role("button", name="Create claim").click()
    opal.page.locator("#claim-key").wait_for()  # an operator may create claims
    opal.goto("/console/keys")
    assert opal.page.get_by_role("button", name="Create key").count() == 0
    refused = opal.page.request.post(
        opal.url("/console/keys"), form={"csrf": opal.csrf(), "name": "x", "scope": "internal"}
    )
    assert refused.status == 403
    assert opal.goto("/console/operators").status == 403

    admin.goto("/console/operators")
    admin.page.locator("tr", has_text="opal").get_by_role("button", name="Disable").click()
    admin.page.get_by_text("Operator opal disabled").wait_for()
    opal.goto("/console/devices")
    assert opal.page.url.endswith("/console/sign-in")  # signed out at once
    audit = httpx.get(
        server.http_url + "/v1/audit", params={"actor": "operator:opal"}, headers=_admin(server)
    ).json()["entries"]
    assert [e["action"] for e in audit] == ["console.denied", "claim.create", "console.sign_in"]
    assert not admin.errors, admin.errors
    assert [e for e in opal.errors if "403" not in e] == []
