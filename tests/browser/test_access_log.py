"""The access log page in a real browser (issue #17, item 4): a root admin finds who read
the institution's history, filters it without JavaScript, on a desktop and a phone; a
department admin may not read it. Against the demo as a user runs it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Demo, log_in, screenshot
from tests.browser.test_registrar_flows import PHONE, overflow

pytestmark = pytest.mark.browser


def shown_readers(page: Any) -> list[str]:
    return page.locator("ol.access-records .access-who").all_inner_texts()


def test_a_root_admin_finds_who_read_the_history(login: Any, new_page: Any, demo: Demo) -> None:
    inside, root = demo.facts["inside"], demo.facts["root"]
    # The department admin reads a course of theirs.
    reader = login("dept_admin")
    assert reader.goto(f"/audit/courses/{inside['id']}/").status == 200
    access_log = f"/audit/accounts/{root['id']}/access-log/"
    # ... and may not read who read what: the log is the root admins'.
    assert reader.goto(access_log).status == 403

    page = log_in(new_page(java_script_enabled=False), "registrar")
    page.goto(f"/audit/accounts/{root['id']}/")
    page.get_by_role("link", name="Who has read this institution's history (access log)").click()
    page.get_by_role("heading", level=1, name=f"Access log of {root['name']}").wait_for()
    assert page.locator("script").count() == 0
    readers = shown_readers(page)
    assert readers[0] == "registrar"  # the root's page just read
    assert "dept_admin" in readers
    page.get_by_label("Who (user name)").fill("dept_admin")
    page.get_by_label("Page", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**who=dept_admin**")
    readers = shown_readers(page)
    assert readers and set(readers) == {"dept_admin"}
    record = page.locator("ol.access-records > li").first
    assert record.get_by_role("link", name=f"Course {inside['id']}").get_attribute("href") == (
        f"/audit/courses/{inside['id']}/"
    )
    screenshot(page, "access-log")


def test_the_access_log_passes_an_accessibility_audit_and_fits_a_phone(
    login: Any, demo: Demo
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    root = demo.facts["root"]
    url = f"/audit/accounts/{root['id']}/access-log/"
    problems = {}
    page = login("registrar")
    page.goto(f"/audit/courses/{demo.facts['course']['id']}/")
    for name, address in {
        "access log": url,
        "access log, filtered": url + "?who=registrar&surface=page&start_time=2000-01-01",
        "access log, a filter error": url + "?start_time=yesterday",
    }.items():
        page.goto(address)
        results = axe.run(page)
        if results.violations_count:
            problems[name] = results.generate_report()

    phone = login("registrar", **PHONE)
    phone.goto(url)
    assert phone.locator("ol.access-records > li").count() >= 1
    results = axe.run(phone)
    if results.violations_count:
        problems["access log on a phone"] = results.generate_report()
    assert overflow(phone) <= 0, f"the access log scrolls sideways by {overflow(phone)}px"
    assert not problems, problems
