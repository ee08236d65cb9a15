"""Browser tests: Debian's Chromium driven by Playwright, against the live test server.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``
(``scripts/test`` installs it with apt-get when it is missing).
"""

from __future__ import annotations

import dataclasses
import json
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


# Package scope: Chromium and Playwright's event loop stop when the browser tests are done,
# so the rest of the suite runs without them and with Django's async-safety check back on.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls
    # (fixtures) are synchronous and safe here.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
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


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclasses.dataclass(frozen=True)
class Demo:
    url: str
    facts: dict[str, Any]  # from tests/browser/demo_facts.py: the courses the tests use


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo as a user runs it: a fresh SQLite database, ``migrate``, ``seed_demo``
    (Northwind State University, users registrar / dept_admin / admin, password ``demo``)
    and ``runserver`` on a free port of 127.0.0.1, with the export worker (``db_worker``)
    beside it. Seeded once for the session; the tests
    only read, apart from the time zone each viewer keeps in its own session."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    folder = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'demo.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "auditlog_project.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TIME_ZONE": "UTC",
        "COURSE_AUDIT_EXPORT_DIR": str(folder / "exports"),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    manage = [sys.executable, str(REPO / "manage.py")]
    _run([*manage, "migrate", "--noinput", "-v0"], env)
    _run([*manage, "seed_demo"], env)
    facts = json.loads(_run([sys.executable, "-m", "tests.browser.demo_facts"], env))
    port = _free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # The export worker, as scripts/demo starts it beside the server.
    worker_log = (folder / "worker.log").open("w")
    worker = subprocess.Popen(
        [*manage, "db_worker", "--no-reload", "--interval", "0.5"],
        env=env,
        cwd=REPO,
        stdout=worker_log,
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
        yield Demo(url=url, facts=facts)
    finally:
        server.terminate()
        worker.terminate()
        server.wait(timeout=10)
        worker.wait(timeout=10)
        log.close()
        worker_log.close()


@pytest.fixture
def new_page(browser: Any, demo: Demo) -> Iterator[Any]:
    """``new_page(**context_options)``: a page on the demo in a browser context of its own
    (its own cookies), in English, closed after the test."""
    contexts: list[Any] = []

    def open_page(**context_options: Any) -> Any:
        options = {"viewport": {"width": 1280, "height": 900}, "locale": "en-US"}
        context = browser.new_context(base_url=demo.url, **{**options, **context_options})
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def log_in(page: Any, username: str) -> Any:
    """Log in through the login form; lands on the audit home page."""
    page.goto("/accounts/login/?next=/audit/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/audit/")
    return page


@pytest.fixture
def login(new_page: Any) -> Any:
    """``login(username, **context_options)``: a new page logged in as ``username``."""
    return lambda username, **options: log_in(new_page(**options), username)
