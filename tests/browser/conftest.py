"""Browser fixtures: one real BinPay stack (pull mode), console logins, and Debian's Chromium via Playwright.

Playwright's own browser download needs the internet; the system's Chromium (apt-get install
chromium) is driven instead. Screenshots land in .run/screenshots/ (kept after the run).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from console_pages import Login, manage
from playwright.sync_api import Page, sync_playwright
from stack import ROOT, build_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = ROOT / ".run" / "screenshots"


@pytest.fixture(scope="session")
def stack(emulator_env, tmp_path_factory):
    built = build_stack("pull", emulator_env, tmp_path_factory.mktemp("browser-stack"))
    yield built
    dead = built.dead()
    built.stop_all()
    assert not dead, f"processes died during the run: {dead}"


@pytest.fixture(scope="session")
def staff_login(stack, tmp_path_factory) -> Login:
    """The console's staff login, made as `make run` makes it."""
    password_file = tmp_path_factory.mktemp("console") / "console-password"
    manage(stack, "ensure_console_staff", "--username", "operator", "--password-file", str(password_file))
    return Login("operator", password_file.read_text().strip())


@pytest.fixture(scope="session")
def customer_login(stack) -> Login:
    """A Django login that is not staff."""
    login = Login("not-staff", secrets.token_urlsafe(12))
    manage(
        stack,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({login.username!r}, password={login.password!r}, is_staff=False)",
    )
    return login


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


@pytest.fixture
def screenshot(page, request):
    """page → .run/screenshots/<test>-<name>.png; returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
