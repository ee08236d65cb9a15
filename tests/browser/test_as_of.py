"""The as-of page in a real browser, against the demo (issue #17, item 3): a registrar
opens it from a course's history, sets two moments around one update without JavaScript,
sees the fields that differ marked, follows a value to the event that set it; the page
passes an accessibility audit and fits a phone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.browser.conftest import log_in, screenshot
from tests.browser.test_registrar_flows import PHONE, open_course, overflow, shown_events

pytestmark = pytest.mark.browser


def local_input(iso: str) -> str:
    """A timeline's ISO time as a datetime-local input takes it (the viewer's zone: the
    demo's UTC), to the second."""
    return dt.datetime.fromisoformat(iso).replace(tzinfo=None).isoformat("T", "seconds")


def differing_fields(page: Any) -> set[str]:
    return set(
        page.locator("table.as-of tr.differs").evaluate_all(
            "rows => rows.map(row => row.dataset.field)"
        )
    )


def an_update(page: Any) -> dict[str, Any]:
    """The newest ``updated`` event of the history on screen, with the fields it changed
    (the ``data-field``-less diff table names them by label)."""
    updates = [event for event in shown_events(page) if event["type"] == "updated"]
    assert updates, "the demo course has no update on its first page"
    update = updates[0]
    labels = page.locator(f'li[data-event="{update["uuid"]}"] table.diff tbody th')
    update["labels"] = {label.strip().lower() for label in labels.all_inner_texts()}
    return update


def test_the_course_as_of_two_moments_without_javascript(new_page, demo):
    course = demo.facts["course"]
    page = log_in(new_page(java_script_enabled=False), "registrar")
    history = open_course(page, course)
    page.goto(history + "?per_page=100&event_type=updated")
    update = an_update(page)
    page.goto(history)
    page.get_by_role("link", name="The course as of a moment, or two moments compared").click()
    page.get_by_role(
        "heading", level=1, name=f"The course {course['name']} as of a moment"
    ).wait_for()
    assert page.url.endswith(f"/audit/courses/{course['id']}/as-of/")
    assert page.locator("script").count() == 0
    # now, by default: every field known (the demo records each course from its creation)
    assert page.locator("table.as-of tbody tr").count() == 9
    assert page.get_by_text("not in the log").count() == 0

    # a second before the update, and its second: what it changed differs
    moment = dt.datetime.fromisoformat(update["time"])
    page.get_by_label("As of").fill(local_input((moment - dt.timedelta(seconds=1)).isoformat()))
    page.get_by_label("Compare with (optional)").fill(local_input(update["time"]))
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**compare=**")
    differing = differing_fields(page)
    assert differing, "nothing differs around an update"
    labels = {
        page.locator(f'tr[data-field="{name}"] th').evaluate("th => th.firstChild.textContent")
        for name in differing
    }
    assert {label.strip().lower() for label in labels} >= update["labels"]
    for name in differing:
        assert page.locator(f'tr[data-field="{name}"] .differs-tag').is_visible()
    screenshot(page, "course-as-of")

    # a value changed by the update links to it, on the history page, at its second
    changed = next(iter(differing - {"workflow_state"}))
    link = page.locator(f'tr[data-field="{changed}"] td').nth(1).locator(".as-of-setter a")
    assert f"#event-{update['uuid']}" in (link.get_attribute("href") or "")
    link.click()
    page.wait_for_url(f"**#event-{update['uuid']}")
    assert update["uuid"] in [event["uuid"] for event in shown_events(page)]
    assert page.locator(f"#event-{update['uuid']}").is_visible()

    # a moment that is no date-time: the page says which, and answers 400
    response = page.goto(f"/audit/courses/{course['id']}/as-of/?at=someday")
    assert response is not None and response.status == 400
    assert "As of:" in page.get_by_role("alert").inner_text()


def test_the_as_of_page_passes_an_accessibility_audit_and_fits_a_phone(login, demo):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    course = demo.facts["course"]
    url = f"/audit/courses/{course['id']}/as-of/"
    problems = {}
    page = login("registrar")
    phone = login("registrar", **PHONE)
    for name, query in {
        "now": "",
        "compared": "?at=2000-01-01T00:00&compare=2999-01-01T00:00",
        "an error": "?at=someday",
    }.items():
        for device, tab in (("desktop", page), ("phone", phone)):
            tab.goto(url + query)
            results = axe.run(tab)
            if results.violations_count:
                problems[f"{name} on {device}"] = results.generate_report()
        assert overflow(phone) <= 0, f"{name} scrolls sideways by {overflow(phone)}px"
    assert not problems, problems
    # on a phone the columns stack, each value naming its moment
    phone.goto(url + "?at=2000-01-01T00:00&compare=2999-01-01T00:00")
    assert phone.locator("table.as-of thead").is_hidden()
    cell = phone.locator("table.as-of tbody td").first
    assert cell.evaluate("td => getComputedStyle(td, '::before').content") != "none"
    assert phone.get_by_text("the course did not exist yet").first.is_visible()
    screenshot(phone, "course-as-of-phone")
