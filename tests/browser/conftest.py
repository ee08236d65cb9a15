"""Browser tests: Debian's Chromium driven by Playwright, against the live test server.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``
(``scripts/test`` installs it with apt-get when it is missing).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("COURSE_AUDIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls
    # (fixtures) are synchronous and safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under docs/screenshots/ (committed, shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo as a user runs it: a fresh SQLite database, ``migrate``, ``seed_demo``
    (Northwind State University, users registrar / dept_admin / admin, password ``demo``)
    and ``runserver`` on a free port of 127.0.0.1. Seeded once for the session; the tests
    only read, apart from the time zone each viewer keeps in its own session."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    folder = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'demo.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "auditlog_project.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    manage = [sys.executable, str(REPO / "manage.py")]
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run([*manage, *command], env=env, cwd=REPO, check=True, capture_output=True)
    port = _free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the demo server did not start: {(folder / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def login(browser: Any, demo_server: str) -> Iterator[Any]:
    """``login(username)``: a new browser context (its own cookies) logged in through the
    login form, on the demo's home page."""
    contexts: list[Any] = []

    def log_in(username: str, **context_options: Any) -> Any:
        options = {"viewport": {"width": 1280, "height": 900}, **context_options}
        context = browser.new_context(base_url=demo_server, **options)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/?next=/audit/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/audit/")
        return page

    yield log_in
    for context in contexts:
        context.close()
