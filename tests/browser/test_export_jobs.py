"""A background export in a real browser, against the demo and its worker (issue #17, item
5): without JavaScript, the registrar asks for a college's export with its sub-accounts in
the background, watches its page refresh itself until the worker has written it, downloads
the file and checks it against the SHA-256 and row count of its manifest; the pages pass an
accessibility audit and fit a phone."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.browser.conftest import log_in, screenshot
from tests.browser.test_registrar_flows import PHONE, overflow

pytestmark = pytest.mark.browser


def test_a_background_export_without_javascript(new_page, login, demo, tmp_path: Path):
    from axe_playwright_python.sync_playwright import Axe

    account = demo.facts["account"]
    page = log_in(new_page(java_script_enabled=False, accept_downloads=True), "registrar")
    page.goto(f"/audit/accounts/{account['id']}/?include_subaccounts=1&per_page=10")
    page.get_by_role("button", name="Prepare the CSV in the background").click()
    page.wait_for_url(re.compile(r".*/audit/exports/\d+/$"))
    job_url = page.url
    assert page.locator("script").count() == 0
    assert page.get_by_role("heading", level=1).inner_text().startswith("Export ")
    # The page refreshes itself (<meta http-equiv=refresh>) until the worker is done.
    page.locator('#job-state[data-state="done"]').wait_for(timeout=60_000)
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    sha256 = page.locator("code.sha256").inner_text().strip()
    manifest = json.loads(page.locator("pre.manifest").inner_text())
    assert manifest["rows"] == account["subtree_events"]
    assert manifest["include_subaccounts"] is True and manifest["sha256"] == sha256

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the file").click()
    saved = tmp_path / "export.csv"
    download_info.value.save_as(saved)
    data = saved.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256
    assert data.decode().count("\n") == manifest["rows"] + 1  # the header, then a row each

    # the list of the registrar's exports links it
    page.get_by_role("link", name="Your exports").click()
    assert page.locator(f'a[href="{job_url.removeprefix(demo.url)}"]').count() == 1

    # axe runs in the page: a page of its own, with JavaScript; and on a phone.
    audited = login("registrar")
    problems = {}
    for device, tab in (("desktop", audited), ("phone", login("registrar", **PHONE))):
        for name, url in (("job", job_url), ("list", "/audit/exports/")):
            tab.goto(url)
            results = Axe().run(tab)
            if results.violations_count:
                problems[f"{name} on {device}"] = results.generate_report()
            if device == "phone":
                assert overflow(tab) <= 0, f"{name} scrolls sideways by {overflow(tab)}px"
    assert not problems, problems
    audited.goto(job_url)
    screenshot(audited, "background-export")
