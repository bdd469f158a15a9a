"""The console end to end: one `lantern serve` per module, driven by Debian's Chromium through
Playwright (headless, the system browser: no browser download)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.process import LanternProcess

CHROMIUM = Path("/usr/bin/chromium")

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $LANTERN_TEST_ARTIFACTS/console, or a temporary directory."""
    root = os.environ.get("LANTERN_TEST_ARTIFACTS")
    path = Path(root) / "console" if root else tmp_path_factory.mktemp("console-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    data_dir = tmp_path_factory.mktemp("console") / "lantern-data"
    env = {
        "LANTERN_JOBS__TIMER_TICK_SECONDS": "0.2",
        # A provider, so that schedules may be created (nothing is sent: they fire in 2030).
        "LANTERN_PUSH__SMTP__HOST": "127.0.0.1",
    }
    proc = LanternProcess(data_dir, env=env)
    with proc.start(timeout=90):
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_sync.Browser]:
    if not CHROMIUM.exists():  # scripts/check installs it; say so rather than fail obscurely
        why = (
            "the browser tests need Debian's Chromium at /usr/bin/chromium "
            "(apt-get install chromium; scripts/check does this)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(why)  # CI must run them, never skip
        pytest.skip(why)
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


def lantern(
    server: LanternProcess, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """A `lantern` command against ``server``'s data directory."""
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args],
        env=server.command_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass
class Console:
    """One browser context signed in (or not) to the console, recording console errors."""

    server: LanternProcess
    page: playwright_sync.Page
    artifacts: Path
    errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.server.http_url + path

    def goto(self, path: str) -> playwright_sync.Response | None:
        return self.page.goto(self.url(path))

    def sign_in_token(self, token: str) -> None:
        self.goto("/console/sign-in")
        self.page.locator("#token").fill(token)
        self.page.get_by_role("button", name="Sign in with the token").click()

    def sign_in_password(self, name: str, password: str) -> None:
        self.goto("/console/sign-in")
        self.page.locator("#name").fill(name)
        self.page.locator("#password").fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)

    def csrf(self) -> str:
        value = self.page.locator("input[name=csrf]").first.get_attribute("value")
        assert value
        return value


@pytest.fixture
def console_factory(
    browser: playwright_sync.Browser, server: LanternProcess, artifacts: Path
) -> Iterator[object]:
    contexts: list[playwright_sync.BrowserContext] = []

    def make(width: int = 1280, height: int = 900) -> Console:
        context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        console = Console(server, page, artifacts)
        page.on(
            "console",
            lambda m: console.errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: console.errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        return console

    yield make
    for context in contexts:
        context.close()


def admin_token(server: LanternProcess) -> str:
    return (server.data_dir / "admin-token").read_text().strip()


STATUS_401 = re.compile(r"401")
