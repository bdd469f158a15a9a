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
from lantern.device.jobs import firmware_update
from support.process import LanternProcess

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
    """Provision a device with the claim files downloaded from the console; its thing name."""
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
    console.shot("deployment-finished")
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
    claims = httpx.get(server.http_url + "/v1/claims", headers=_admin(server)).json()["claims"]
    assert not [c for c in claims if c["description"] == "csrf probe"]
    # The right token works (the refusals were about the token, not the form).
    right = console.page.request.post(
        console.url("/console/claims"), form={**form, "csrf": console.csrf()}
    )
    assert right.status == 200


def _admin(server: LanternProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token(server)}"}
