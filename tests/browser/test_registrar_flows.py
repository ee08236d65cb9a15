"""The registrar's pages in a real browser, against the demo as a user runs it (seeded
Northwind State University, ``runserver``): what a registrar, a department admin and the
site admin do, with and without JavaScript, on a desktop, a phone and paper."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from course_audit.exports import EXPORT_COLUMNS
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

# Seeded by ``seed_demo`` (course names are fixed; ids are not relied on).
BIOLOGY_COURSE = "Microbiology (Evening) - Spring 2026"  # the demo's busiest course
CS_COURSE = "Machine Learning - Fall 2026"  # in Computer Science, dept_admin's department
PARENT_ACCOUNT = "College of Arts and Sciences"


def shown_events(page: Any) -> list[dict[str, str]]:
    """The timeline as the viewer sees it: uuid, type (the item's class) and ISO time."""
    return page.locator("ol.timeline > li.event").evaluate_all(
        """items => items.map(item => ({
            uuid: item.dataset.event,
            type: [...item.classList].find(c => c.startsWith('event-')).slice(6),
            time: item.querySelector('time.event-time').getAttribute('datetime'),
            title: item.querySelector('time.event-time').getAttribute('title'),
        }))"""
    )


def open_course(page: Any, name: str) -> str:
    """Search the course on the home page and open its history; returns its URL."""
    page.get_by_label("Name, code or SIS id").fill(name.split(" - ")[0])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", level=1, name=f"History of the course {name}").wait_for()
    return page.url


def apply_filters(page: Any) -> None:
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_load_state()


def test_registrar_searches_reads_filters_pages_and_exports(login):
    page = login("registrar")
    history = open_course(page, BIOLOGY_COURSE)
    everything = shown_events(page)
    assert len(everything) >= 10
    assert [event["time"] for event in everything] == sorted(
        (event["time"] for event in everything), reverse=True
    )
    # an `updated` event's before -> after row: a field, its old and its new value
    updated = page.locator("li.event-updated").first
    row = updated.locator("table.diff tbody tr").first
    field, before, after = (
        row.locator("th").inner_text(),
        row.locator("td").nth(0).inner_text(),
        row.locator("td").nth(1).inner_text(),
    )
    assert field and before != after
    screenshot(page, "course-history")

    # filter by type: only `updated` events, and the URL carries it (bookmarkable)
    page.get_by_label("Updated", exact=True).check()
    apply_filters(page)
    assert "event_type=updated" in page.url
    updates = shown_events(page)
    assert updates and {event["type"] for event in updates} == {"updated"}
    assert len(updates) == sum(event["type"] == "updated" for event in everything)

    # and by date: the day of the newest update only
    day = updates[0]["time"][:10]
    page.get_by_label("From", exact=True).fill(day)
    page.get_by_label("To", exact=True).fill(day)
    apply_filters(page)
    assert f"start_time={day}" in page.url and f"end_time={day}" in page.url
    on_day = shown_events(page)
    assert on_day and all(event["time"].startswith(day) for event in on_day)
    assert {event["uuid"] for event in on_day} <= {event["uuid"] for event in updates}

    # older events, ten at a time, then back
    page.goto(history)
    page.get_by_label("Events per page").select_option("10")
    apply_filters(page)
    first_page = shown_events(page)
    assert len(first_page) == 10
    page.get_by_role("link", name="Older →").click()
    page.wait_for_load_state()
    second_page = shown_events(page)
    assert second_page and not {e["uuid"] for e in second_page} & {e["uuid"] for e in first_page}
    assert second_page[0]["time"] <= first_page[-1]["time"]
    assert [e["uuid"] for e in first_page + second_page] == [e["uuid"] for e in everything][
        : len(first_page) + len(second_page)
    ]
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_load_state()
    assert shown_events(page) == first_page

    # switch time zone: the same events, shown in Tokyo's time
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Use this time zone").click()
    page.wait_for_load_state()
    in_tokyo = shown_events(page)
    assert [e["uuid"] for e in in_tokyo] == [e["uuid"] for e in first_page]
    assert all(e["time"].endswith("+09:00") and "JST" in e["title"] for e in in_tokyo)
    utc = dt.datetime.fromisoformat(first_page[0]["time"])
    assert dt.datetime.fromisoformat(in_tokyo[0]["time"]) == utc  # the same instant

    # download the CSV of the `updated` filter: exactly those events, ISO dates
    page.goto(history + "?event_type=updated&per_page=100")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == EXPORT_COLUMNS
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [record["id"] for record in records] == [e["uuid"] for e in updates]
    assert {record["event_type"] for record in records} == {"updated"}
    assert all(record["course_name"] == BIOLOGY_COURSE for record in records)
    assert all(dt.datetime.fromisoformat(r["created_at"]).utcoffset() for r in records)


def test_an_account_with_its_subaccounts(login):
    page = login("registrar")
    page.get_by_role("link", name=PARENT_ACCOUNT, exact=True).click()
    page.get_by_role("heading", level=1, name=f"History of the account {PARENT_ACCOUNT}").wait_for()
    direct = shown_events(page)
    page.get_by_label("Include sub-accounts").check()
    page.get_by_label("Events per page").select_option("100")
    apply_filters(page)
    assert "include_subaccounts=1" in page.url
    subtree = shown_events(page)
    assert len(subtree) > len(direct)
    # the account's own events are among them, as far back as this page reaches
    reached = [e["uuid"] for e in direct if e["time"] >= subtree[-1]["time"]]
    assert reached and set(reached) <= {e["uuid"] for e in subtree}
    # events of the departments' courses are there, each naming its course
    course_links = "ol.timeline .event-meta > a[href*='/audit/courses/']"
    subtree_courses = set(page.locator(course_links).all_inner_texts())
    page.go_back()
    page.wait_for_load_state()
    direct_courses = set(page.locator(course_links).all_inner_texts())
    page.go_forward()
    page.wait_for_load_state()
    assert subtree_courses - direct_courses
    assert page.get_by_role("link", name="Older →").count() == 1  # more than one page
    page.goto(page.url.replace("per_page=100", "per_page=10"))
    screenshot(page, "account-history")


def test_a_department_admin_cannot_reach_another_department(login):
    registrar = login("registrar")
    outside = open_course(registrar, BIOLOGY_COURSE)
    registrar.goto("/audit/")
    inside = open_course(registrar, CS_COURSE)
    page = login("dept_admin")
    # the search does not list the other department's course
    page.get_by_label("Name, code or SIS id").fill("Microbiology")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name=BIOLOGY_COURSE).count() == 0
    # neither its history nor its export opens: the same university, so 403 (another
    # tenant's would be 404), and nothing of the course in the answer
    for url in (outside, outside + "export/?format=csv"):
        response = page.request.get(url)
        assert response.status == 403, url
        assert "Microbiology" not in response.text()
    response = page.goto(outside)
    assert response is not None and response.status == 403
    # its own department's course does
    response = page.goto(inside)
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", level=1, name=f"History of the course {CS_COURSE}").count()


def test_the_admin_changelist_and_an_event(login):
    page = login("admin")
    page.goto("/admin/course_audit/courseevent/")
    assert page.get_by_role("heading", name="Select course event to view").count() == 1
    newest = page.locator("#result_list tbody tr th a").all_inner_texts()
    assert len(newest) == 100
    page.get_by_role("link", name="Older →").click()  # keyset paging, not page numbers
    page.wait_for_load_state()
    assert "after=" in page.url
    older = page.locator("#result_list tbody tr th a").all_inner_texts()
    assert older and older[0] <= newest[-1]
    page.get_by_role("link", name="Published", exact=True).click()  # the type filter
    page.wait_for_load_state()
    assert "event_type__exact=published" in page.url and "after=" not in page.url
    types = page.locator("#result_list tbody td.field-event_type").all_inner_texts()
    assert types and set(types) == {"Published"}
    page.goto("/admin/course_audit/courseevent/?event_type__exact=updated")
    screenshot(page, "admin-changelist", full_page=False)
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_url("**/change/**")
    diff = page.locator("table.course-audit-diff")
    assert diff.count() == 1 and diff.locator("tbody tr").count() >= 1


def test_the_pages_work_without_javascript(browser, demo_server):
    context = browser.new_context(base_url=demo_server, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/accounts/login/?next=/audit/")
        page.get_by_label("Username").fill("registrar")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/audit/")
        history = open_course(page, BIOLOGY_COURSE)
        page.get_by_label("Events per page").select_option("10")
        page.get_by_label("Updated", exact=True).check()
        apply_filters(page)
        assert "per_page=10" in page.url and "event_type=updated" in page.url
        assert {event["type"] for event in shown_events(page)} == {"updated"}
        page.goto(history + "?per_page=10")
        first = shown_events(page)
        page.get_by_role("link", name="Older →").click()
        page.wait_for_load_state()
        assert shown_events(page)[0]["uuid"] not in {event["uuid"] for event in first}
        # the chart is an image with its data as a table, no script needed
        assert page.locator("svg.chart-svg[role=img]").count() == 1
        assert page.locator("details.chart-data table").count() == 1
    finally:
        context.close()


def test_the_history_reads_well_on_a_phone_and_on_paper(login):
    page = login("registrar", viewport={"width": 390, "height": 844}, is_mobile=True)
    open_course(page, BIOLOGY_COURSE)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    screenshot(page, "course-history-phone")
    page.emulate_media(media="print")
    for hidden in (".filters", ".pager", ".tz-form", ".site-header", ".exports", ".skip-link"):
        assert page.locator(hidden).first.is_hidden(), hidden
    assert page.locator("ol.timeline").is_visible()
    assert page.locator("details.chart-data table").is_visible()  # the numbers, on paper


def test_the_pages_pass_an_accessibility_audit(login):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = login("registrar")
    targets = {"home": page.url}
    targets["course history"] = open_course(page, BIOLOGY_COURSE)
    page.goto("/audit/")
    page.get_by_role("link", name=PARENT_ACCOUNT, exact=True).click()
    page.wait_for_load_state()
    targets["account history"] = page.url + "?include_subaccounts=1"
    request = page.locator("a[href*='/audit/page-views/']").first
    page.goto(targets["account history"])
    if request.count():
        targets["page view"] = request.get_attribute("href")
    problems = {}
    for name, url in targets.items():
        page.goto(url)
        results = axe.run(page)
        if results.violations_count:
            problems[name] = results.generate_report()
    # the login page, logged out
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    results = axe.run(page)
    if results.violations_count:
        problems["login"] = results.generate_report()
    assert not problems, problems


def test_keyboard_order_and_landmarks(login):
    page = login("registrar")
    open_course(page, BIOLOGY_COURSE)
    assert page.get_by_role("banner").count() == 1
    assert page.get_by_role("main").count() == 1
    assert page.get_by_role("navigation", name="Breadcrumbs").count() == 1
    assert page.get_by_role("navigation", name="Pages").count() == 1
    # every form control has a label
    unlabelled = page.locator("input:not([type=hidden]), select, textarea").evaluate_all(
        "els => els.filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"
    )
    assert unlabelled == []
    # Tab from the top: the skip link first, and it lands on the main content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # then, in reading order: the filters, their button, the export, the timeline
    order = []
    for _ in range(80):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate(
                "(el => el.id || el.closest('ol.timeline') && 'timeline' || el.textContent.trim())"
                "(document.activeElement)"
            )
        )
    assert order.index("f-start") < order.index("Apply filters") < order.index("Download CSV")
    assert order.index("Download CSV") < order.index("timeline")
