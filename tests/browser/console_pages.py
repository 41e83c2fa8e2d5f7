"""What the browser tests share besides fixtures: logins, manage.py against the stack, signing in."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from playwright.sync_api import Page
from stack import ROOT, Stack


@dataclass(frozen=True)
class Login:
    username: str
    password: str


def manage(stack: Stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT / "initiator",
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def sign_in(page: Page, stack: Stack, login: Login) -> None:
    page.goto(f"{stack.initiator_url}/console/")
    page.fill("input[name=username]", login.username)
    page.fill("input[name=password]", login.password)
    page.click("button[type=submit]")
