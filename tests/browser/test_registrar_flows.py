"""The registrar's pages in a real browser, against the demo as a user runs it (seeded
Northwind State University, ``runserver``): what a registrar, a department admin and the
site admin do, with and without JavaScript, on a desktop, a phone and paper.

The courses and accounts come from ``demo.facts`` (tests/browser/demo_facts.py): the demo's
history is dated back from today, so its course names change with the calendar."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.template.loader import render_to_string

from course_audit.exports import EXPORT_COLUMNS
from course_audit.presentation import FOLD_AT, diff_rows
from tests.browser.conftest import REPO, log_in, screenshot

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def shown_events(page: Any) -> list[dict[str, str]]:
    """The timeline as the viewer sees it: uuid, type (the item's class), ISO time and the
    exact time shown on hover."""
    return page.locator("ol.timeline > li.event").evaluate_all(
        """items => items.map(item => ({
            uuid: item.dataset.event,
            type: [...item.classList].find(c => c.startsWith('event-')).slice(6),
            time: item.querySelector('time.event-time').getAttribute('datetime'),
            title: item.querySelector('time.event-time').getAttribute('title'),
        }))"""
    )


def uuids(events: list[dict[str, str]]) -> list[str]:
    return [event["uuid"] for event in events]


def shown_courses(page: Any) -> set[int]:
    """Ids of the courses the timeline's events belong to (an account's history names them)."""
    hrefs = page.locator("ol.timeline .event-meta > a:first-child").evaluate_all(
        "links => links.map(link => link.getAttribute('href'))"
    )
    return {int(re.fullmatch(r"/audit/courses/(\d+)/", href)[1]) for href in hrefs}


def chart_total(page: Any) -> int:
    """The number of matching events, as the chart's description states it."""
    match = re.match(r"([\d,]+) events? from", page.locator("#chart-desc").inner_text())
    assert match, page.locator("#chart-desc").inner_text()
    return int(match[1].replace(",", ""))


def open_course(page: Any, course: dict[str, Any]) -> str:
    """Search the course by name on the home page and open its history; returns its URL."""
    page.get_by_label("Name, code or SIS id").fill(course["name"])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=course["name"], exact=True).click()
    page.get_by_role("heading", level=1, name=f"History of the course {course['name']}").wait_for()
    assert page.url.endswith(f"/audit/courses/{course['id']}/")
    return page.url


def apply_filters(page: Any) -> None:
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_load_state()


# (text, words, lines) of each element: how many lines its text takes on the screen.
LINES = """elements => elements.map(element => {
    const range = document.createRange();
    range.selectNodeContents(element);
    const tops = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
    return [element.textContent, element.textContent.trim().split(/\\s+/).length, tops.size];
})"""


def middle(box: dict[str, float]) -> float:
    return box["y"] + box["height"] / 2


def overflow(page: Any) -> int:
    """How far the page scrolls sideways (a phone's page should not)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_registrar_searches_reads_filters_pages_and_exports(login, demo):
    course = demo.facts["course"]
    page = login("registrar")
    history = open_course(page, course)
    screenshot(page, "course-history")
    page.get_by_label("Events per page").select_option("100")
    apply_filters(page)
    everything = shown_events(page)
    assert len(everything) == course["events"]
    assert [e["time"] for e in everything] == sorted((e["time"] for e in everything), reverse=True)

    # an `updated` event's before -> after row: the field, its old and its new value
    diff = page.locator("li.event-updated table.diff").first
    headers = [text.replace("→", "").strip() for text in diff.locator("thead th").all_inner_texts()]
    assert headers == ["Field", "Before", "After"]
    row = diff.locator("tbody tr").first
    field, before, after = row.locator("th"), row.locator("td").nth(0), row.locator("td").nth(1)
    for cell in (field, before, after):
        assert cell.is_visible() and cell.inner_text().strip()
    assert before.inner_text() != after.inner_text()
    # the fields' names keep their words whole ("Public descriptio|n" is hard to read)
    for name, words, lines in page.locator("table.diff tbody th").evaluate_all(LINES):
        assert lines <= words, f"{name!r} is broken into {lines} lines"

    # filter by type: only `updated` events, and the URL carries it (a bookmark)
    page.get_by_label("Updated", exact=True).check()
    apply_filters(page)
    assert "event_type=updated" in page.url and "per_page=100" in page.url
    updates = shown_events(page)
    assert len(updates) == course["updated"]
    assert uuids(updates) == [e["uuid"] for e in everything if e["type"] == "updated"]

    # and by dates: from the oldest update's day to the day of the second newest
    first_day, last_day = updates[-1]["time"][:10], updates[1]["time"][:10]
    page.get_by_label("From", exact=True).fill(first_day)
    page.get_by_label("To", exact=True).fill(last_day)
    apply_filters(page)
    assert f"start_time={first_day}" in page.url and f"end_time={last_day}" in page.url
    assert "event_type=updated" in page.url
    in_range = shown_events(page)
    assert in_range and {e["type"] for e in in_range} == {"updated"}
    assert all(first_day <= e["time"][:10] <= last_day for e in in_range)
    assert uuids(in_range) == [e["uuid"] for e in updates if e["time"][:10] <= last_day]

    # older events, ten at a time, and back
    page.get_by_role("link", name="Clear filters").click()
    page.wait_for_url(history)
    page.get_by_label("Events per page").select_option("10")
    apply_filters(page)
    first_page = shown_events(page)
    assert first_page == everything[:10]
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url("**after=**")
    second_page = shown_events(page)
    assert second_page == everything[10:20]
    assert second_page[0]["time"] <= first_page[-1]["time"]
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_url("**before=**")
    assert shown_events(page) == first_page

    # another time zone: the same instants, shown in Tokyo's time
    shown_in_utc = page.locator("ol.timeline time.event-time").all_inner_texts()
    url = page.url
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Use this time zone").click()
    page.wait_for_url(url)  # back where the viewer was
    assert page.get_by_label("Time zone").input_value() == "Asia/Tokyo"
    in_tokyo = shown_events(page)
    assert uuids(in_tokyo) == uuids(first_page)
    assert all(e["time"].endswith("+09:00") and " JST " in e["title"] for e in in_tokyo)
    for there, here in zip(first_page, in_tokyo, strict=True):
        assert dt.datetime.fromisoformat(there["time"]) == dt.datetime.fromisoformat(here["time"])
    assert page.locator("ol.timeline time.event-time").all_inner_texts() != shown_in_utc

    # the CSV of the `updated` filter: exactly those events, in the viewer's time zone
    page.goto(history + "?event_type=updated&per_page=100")
    shown = shown_events(page)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == EXPORT_COLUMNS
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [record["id"] for record in records] == uuids(shown) == uuids(updates)
    assert {record["event_type"] for record in records} == {"updated"}
    assert {(r["course_id"], r["course_name"]) for r in records} == {
        (str(course["id"]), course["name"])
    }
    for record, event in zip(records, shown, strict=True):
        assert record["created_at"].endswith("+09:00")
        exported = dt.datetime.fromisoformat(record["created_at"])
        assert exported == dt.datetime.fromisoformat(event["time"]).replace(microsecond=0)


def test_an_account_with_its_subaccounts(login, demo):
    account = demo.facts["account"]
    own_courses, below = set(account["courses"]), set(account["subaccount_courses"])
    page = login("registrar")
    page.get_by_role("link", name=account["name"], exact=True).click()
    heading = f"History of the account {account['name']}"
    page.get_by_role("heading", level=1, name=heading).wait_for()
    assert page.url.endswith(f"/audit/accounts/{account['id']}/")
    # on its own: the events of the courses that sat in the account itself
    assert chart_total(page) == account["events"]
    assert shown_courses(page) <= own_courses
    checkbox = page.get_by_label("Include sub-accounts")
    assert not checkbox.is_checked()
    box, label = checkbox.bounding_box(), page.locator("label[for=f-sub]").bounding_box()
    assert label["x"] > box["x"] and abs(middle(label) - middle(box)) < label["height"] / 2

    page.get_by_label("Include sub-accounts").check()
    page.get_by_label("Events per page").select_option("100")
    apply_filters(page)
    assert "include_subaccounts=1" in page.url
    assert page.get_by_label("Include sub-accounts").is_checked()
    assert chart_total(page) == account["subtree_events"] > account["events"]
    assert len(shown_events(page)) == min(100, account["subtree_events"])
    courses = shown_courses(page)
    assert courses & below and courses - own_courses  # the departments' courses too
    if account["subtree_events"] > 100:
        page.get_by_role("link", name="Older →").click()
        page.wait_for_url("**after=**")
        assert "include_subaccounts=1" in page.url
        assert len(shown_events(page)) == min(100, account["subtree_events"] - 100)
    page.goto(f"/audit/accounts/{account['id']}/?include_subaccounts=1&per_page=10")
    screenshot(page, "account-history")


def test_a_department_admin_cannot_reach_another_department(login, demo):
    outside, inside = demo.facts["outside"], demo.facts["inside"]
    page = login("dept_admin")
    # the home page offers its department only, and the search finds nothing outside it
    assert page.locator(".account-tree a").all_inner_texts() == [demo.facts["department"]]
    page.get_by_label("Name, code or SIS id").fill(outside["name"])
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name=outside["name"]).count() == 0
    assert page.get_by_text(f"No course you may audit matches “{outside['name']}”.").is_visible()
    page.goto("/audit/")
    open_course(page, inside)  # while its own department's course opens

    # neither the history, the exports nor the account page of the other course opens: the
    # same university, so 403 (another tenant's would be 404), with nothing of the course
    course_url = f"/audit/courses/{outside['id']}/"
    for url in (
        course_url,
        course_url + "export/?format=csv",
        course_url + "export/?format=jsonl",
        f"/audit/accounts/{outside['account']}/",
        f"/audit/accounts/{outside['account']}/export/?format=csv",
    ):
        response = page.request.get(url)
        assert response.status == 403, url
        assert outside["name"] not in response.text(), url
    response = page.goto(course_url)
    assert response is not None and response.status == 403


def test_a_sis_import_and_the_changed_field_filter(login, demo):
    batch = demo.facts["sis_batch"]
    page = login("registrar")
    page.goto(f"/audit/sis-batches/{batch['id']}/?per_page=100")
    page.get_by_role("heading", level=1, name=f"Changes of SIS import #{batch['id']}").wait_for()
    events = shown_events(page)
    assert len(events) == min(100, batch["events"])
    # each event names its import, a link back to this page
    link = page.locator("ol.timeline .who a").first
    assert link.inner_text() == f"SIS import #{batch['id']}"
    assert link.get_attribute("href") == f"/audit/sis-batches/{batch['id']}/"
    # the changed-field checkboxes filter the import's updates, without a script
    field = batch["fields"][0]
    page.locator(f"#f-field-{field}").check()
    apply_filters(page)
    assert f"field={field}" in page.url
    assert page.locator(f"#f-field-{field}").is_checked()
    shown = shown_events(page)
    assert {event["type"] for event in shown} == {"updated"}
    assert len(shown) == min(100, batch["updated_of"][field])
    # the export is exactly the filtered page's events
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == batch["updated_of"][field]
    assert {row["sis_batch_id"] for row in rows} == {str(batch["id"])}


def admin_rows(page: Any) -> list[int]:
    hrefs = page.locator("#result_list tbody tr th a").evaluate_all(
        "links => links.map(link => link.getAttribute('href'))"
    )
    return [int(re.search(r"/courseevent/(\d+)/change/", href)[1]) for href in hrefs]


def test_the_admin_changelist_and_an_event(login, demo):
    newest = demo.facts["newest_events"]
    page = login("admin")
    page.goto("/admin/course_audit/courseevent/")
    assert page.get_by_role("heading", name="Select course event to view").count() == 1
    assert admin_rows(page) == newest[:100]
    page.get_by_role("link", name="Older →").click()  # keyset paging, not page numbers
    page.wait_for_url("**after=**")
    assert admin_rows(page) == newest[100:200]
    page.get_by_role("link", name="Published", exact=True).click()  # the type filter
    page.wait_for_url("**event_type__exact=published**")
    assert "after=" not in page.url  # a new filter starts at the newest
    types = page.locator("#result_list tbody td.field-event_type").all_inner_texts()
    assert types and set(types) == {"Published"}
    page.goto("/admin/course_audit/courseevent/?event_type__exact=updated")
    screenshot(page, "admin-changelist", full_page=False)
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_url("**/change/**")
    diff = page.locator("table.diff")
    assert diff.locator("thead th").all_text_contents() == ["Field", "Before", "→ After"]
    cells = diff.locator("tbody tr").first.locator("th, td").all_inner_texts()
    assert len(cells) == 3 and cells[0] and cells[1] != cells[2]


def test_the_pages_work_without_javascript(new_page, demo):
    course = demo.facts["course"]
    page = log_in(new_page(java_script_enabled=False), "registrar")
    # The home page's recent activity: days, newest first, each event's course a link.
    page.goto("/audit/")
    recent = page.locator("section[aria-labelledby=recent-heading]")
    assert recent.locator("h3.day").count() >= 1
    assert recent.locator("li.event").count() == 20
    recent.locator("li.event a[href^='/audit/courses/']").first.click()
    page.wait_for_url("**/audit/courses/*/")
    page.goto("/audit/")
    history = open_course(page, course)
    assert page.locator("script").count() == 0  # nothing to run, nothing missing
    page.get_by_label("Events per page").select_option("10")
    page.get_by_label("Updated", exact=True).check()
    apply_filters(page)
    assert "per_page=10" in page.url and "event_type=updated" in page.url
    assert {event["type"] for event in shown_events(page)} == {"updated"}
    page.goto(history + "?per_page=10")
    first = shown_events(page)
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url("**after=**")
    older = shown_events(page)
    assert older and not set(uuids(older)) & set(uuids(first))
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_url("**before=**")
    assert shown_events(page) == first
    # the time zone form posts and comes back
    url = page.url
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_role("button", name="Use this time zone").click()
    page.wait_for_url(url)
    assert all(re.search(r"-0[56]:00$", event["time"]) for event in shown_events(page))
    # the chart is an image with its data as a table, no script needed
    assert page.locator("svg.chart-svg[role=img]").count() == 1
    page.get_by_text("The chart's data as a table").click()
    assert page.locator("details.chart-data table").is_visible()


def test_the_pages_pass_an_accessibility_audit(login, demo):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    course, account = demo.facts["course"], demo.facts["account"]
    course_url = f"/audit/courses/{course['id']}/"
    problems = {}

    def audit(name: str, page: Any) -> None:
        results = axe.run(page)
        if results.violations_count:
            problems[name] = results.generate_report()

    page = login("registrar")
    for name, url in {
        "home, recent activity": "/audit/",
        "home": "/audit/?q=" + quote(course["name"]),
        "course history": course_url,
        "account history": f"/audit/accounts/{account['id']}/?include_subaccounts=1",
        "page view": f"/audit/page-views/{demo.facts['page_view']}/",
        "a filter error": course_url + "?start_time=yesterday",
        "SIS import": f"/audit/sis-batches/{demo.facts['sis_batch']['id']}/",
        "an unknown changed field": course_url + "?field=colour",
    }.items():
        page.goto(url)
        audit(name, page)
    page.goto(course_url + "?per_page=10")
    page.get_by_text("The chart's data as a table").click()
    audit("course history, chart table open", page)

    phone = login("registrar", **PHONE)
    phone.goto(course_url)
    audit("course history on a phone", phone)
    assert not problems, problems


def test_the_login_page_passes_an_accessibility_audit(new_page):
    from axe_playwright_python.sync_playwright import Axe

    page = new_page()
    page.goto("/accounts/login/")
    results = Axe().run(page)
    assert not results.violations_count, results.generate_report()
    page.get_by_label("Username").fill("registrar")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").wait_for()
    results = Axe().run(page)
    assert not results.violations_count, results.generate_report()


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two computed ``rgb(...)`` colours."""

    def luminance(color: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", color)[:3]]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


FOCUSED = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    let behind = el.parentElement, background = 'rgba(0, 0, 0, 0)';
    while (behind && (background = getComputedStyle(behind).backgroundColor) === 'rgba(0, 0, 0, 0)')
        behind = behind.parentElement;
    return {
        key: el.id || (el.closest('ol.timeline') && 'timeline') || el.className
             || el.textContent.trim(),
        tag: el.tagName,
        outline: style.outlineStyle, width: parseFloat(style.outlineWidth),
        color: style.outlineColor, behind: behind ? background : 'rgb(255, 255, 255)',
    };
}"""


def test_landmarks_labels_and_the_keyboard(login, demo):
    course = demo.facts["course"]
    page = login("registrar")
    assert page.get_by_role("search").count() == 1  # the course search on the home page
    page.goto(f"/audit/courses/{course['id']}/?per_page=10")
    assert page.get_by_role("banner").count() == 1
    assert page.get_by_role("main").count() == 1
    assert page.get_by_role("contentinfo").count() == 1
    for name in ("Site", "Breadcrumbs", "Pages"):
        assert page.get_by_role("navigation", name=name).count() == 1, name
    if course["events"] <= 100:  # one page: no empty "Pages" landmark
        page.goto(f"/audit/courses/{course['id']}/?per_page=100")
        assert page.get_by_role("navigation", name="Pages").count() == 0
        page.go_back()
    # the chart's data is there for a screen reader: an image named by its heading and
    # description, and a table of the same numbers behind a summary
    chart = page.get_by_role("img", name=re.compile(r"^Events per (day|week) \d+ events? from"))
    assert chart.count() == 1
    page.get_by_text("The chart's data as a table").click()
    table = page.get_by_role("table", name=re.compile(r"^Events per (day|week) and type$"))
    totals = table.locator("tbody tr td:last-child").all_inner_texts()
    assert sum(map(int, totals)) == course["events"] == chart_total(page)
    assert table.locator("tbody th[scope=row]").count() == len(totals)

    history = page.url
    # every form control has a label, on every page
    for url in ("/audit/", history, f"/audit/accounts/{demo.facts['account']['id']}/"):
        page.goto(url)
        unlabelled = page.locator("input:not([type=hidden]), select, textarea").evaluate_all(
            "els => els.filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"
        )
        assert unlabelled == [], url

    # Tab from the top: the skip link first, and it lands on the main content
    page.goto(history)
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["key"] == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # then, in reading order: the filters, their button, the export, the chart's table, the
    # timeline, the pages and the time zone; each focused control shows a clear ring
    focused = []
    for _ in range(120):
        page.keyboard.press("Tab")
        focused.append(page.evaluate(FOCUSED))
        if focused[-1]["key"] == "tz-select":
            break
    order = [element["key"] for element in focused]
    expected = [
        "f-start",
        "f-end",
        "f-person",
        "f-per-page",
        "f-type-created",
        "f-source-manual",
        "Apply filters",
        "Download CSV",
        "The chart's data as a table",
        "timeline",
        "Older →",
        "tz-select",
    ]
    assert set(expected) <= set(order), order
    positions = [order.index(key) for key in expected]
    assert positions == sorted(positions), order
    for element in focused:
        assert element["outline"] != "none" and element["width"] >= 2, element
        assert contrast(element["color"], element["behind"]) >= 3, element
    # the header's links show their ring against its dark blue too
    page.locator(".site-name").focus()
    header_link = page.evaluate(FOCUSED)
    assert contrast(header_link["color"], header_link["behind"]) >= 3, header_link


def test_the_pages_fit_a_phone(login, demo):
    course, account = demo.facts["course"], demo.facts["account"]
    page = login("registrar", **PHONE)
    for url in (
        "/audit/",
        "/audit/?q=" + quote(course["name"]),
        f"/audit/courses/{course['id']}/",
        f"/audit/accounts/{account['id']}/?include_subaccounts=1",
        f"/audit/page-views/{demo.facts['page_view']}/",
        f"/audit/sis-batches/{demo.facts['sis_batch']['id']}/",
    ):
        page.goto(url)
        assert overflow(page) <= 0, f"{url} scrolls sideways by {overflow(page)}px on a phone"

    page.goto(f"/audit/courses/{course['id']}/")
    screenshot(page, "course-history-phone")
    # the diff's columns are stacked: each value names its side
    cells = page.locator("li.event-updated table.diff tbody td")
    assert page.locator("table.diff thead").first.is_hidden()
    assert cells.evaluate_all("tds => tds.map(td => td.dataset.label)")[:2] == ["Before", "After"]
    assert cells.first.evaluate("td => getComputedStyle(td, '::before').content") != "none"
    # the chart's labels are text of the page (not squeezed with the drawing) inside it
    plot = page.locator(".chart-plot").bounding_box()
    for label in (".chart-start", ".chart-end", ".chart-max"):
        box = page.locator(label).bounding_box()
        assert box["x"] >= plot["x"] and box["x"] + box["width"] <= plot["x"] + plot["width"]
    # the chart's table scrolls in its own box, one line per cell, not letter by letter
    page.goto(f"/audit/accounts/{account['id']}/?include_subaccounts=1")
    page.get_by_text("The chart's data as a table").click()
    assert overflow(page) <= 0
    lines = page.locator("details.chart-data th").evaluate_all(LINES)
    assert lines and all(count == 1 for _, _, count in lines), lines
    scroller = page.locator("details.chart-data .table-scroll")
    assert scroller.evaluate("box => box.scrollWidth > box.clientWidth")


def test_the_history_prints_without_its_controls(login, demo):
    course = demo.facts["course"]
    page = login("registrar")
    page.goto(f"/audit/courses/{course['id']}/?per_page=10")
    page.emulate_media(media="print")
    for hidden in ("nav", "form", ".exports", ".skip-link", "details.chart-data summary"):
        elements = page.locator(hidden)
        assert elements.count(), hidden
        for index in range(elements.count()):
            assert elements.nth(index).is_hidden(), hidden
    assert page.locator("ol.timeline > li.event").count() == 10
    assert page.locator("ol.timeline").is_visible()
    assert page.locator("svg.chart-svg").is_visible()
    # the chart's numbers print, though their <details> stays closed
    assert page.locator("details.chart-data").get_attribute("open") is None
    assert page.locator("details.chart-data table").is_visible()
    screenshot(page, "course-history-print")
    page.emulate_media(media="screen")
    assert page.locator("form.filters").is_visible()


def test_a_long_value_prints_whole(page):
    """A value longer than FOLD_AT shows its start on screen (opened on demand), all of it on
    paper. The demo holds no such value, so the value's template is drawn on its own."""
    text = "Syllabus and schedule. " * 12
    table = render_to_string(
        "course_audit/_diff.html", {"diff": diff_rows({"public_description": [None, text]}, {})}
    )
    css = (REPO / "course_audit" / "static" / "course_audit" / "audit.css").read_text()
    page.set_content(f"<style>{css}</style>{table}")
    full = page.locator("td .full")
    assert len(text) > FOLD_AT and not full.is_visible()
    page.emulate_media(media="print")
    assert full.is_visible() and page.locator("td summary").is_hidden()
    assert page.locator('td[data-label="After"]').inner_text().strip() == text.strip()


def test_a_persons_page_through_the_picker_without_javascript(login, new_page, demo):
    from axe_playwright_python.sync_playwright import Axe

    course, person = demo.facts["course"], demo.facts["person"]
    page = log_in(new_page(java_script_enabled=False), "registrar")
    open_course(page, course)
    page.get_by_label("Person").fill(person["login"])
    apply_filters(page)
    page.wait_for_url(f"**user_id={person['id']}**")
    assert page.get_by_text("Only the events of").is_visible()
    page.get_by_role("link", name=f"{person['name']} ({person['login']})").click()
    page.wait_for_url(f"**/audit/people/{person['id']}/")
    page.get_by_role("heading", level=1, name=f"Changes made by {person['name']}").wait_for()
    assert len(shown_events(page)) == min(person["events"], 25)

    # axe runs in the page: a page of its own, with JavaScript.
    audited = login("registrar")
    audited.goto(f"/audit/people/{person['id']}/")
    results = Axe().run(audited)
    assert not results.violations_count, results.generate_report()
    screenshot(audited, "person-page")
    phone = login("registrar", **PHONE)
    phone.goto(f"/audit/people/{person['id']}/")
    assert overflow(phone) <= 0
    results = Axe().run(phone)
    assert not results.violations_count, results.generate_report()
