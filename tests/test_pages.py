"""The registrar's pages: scoping, filters, paging, exports, rendering."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from course_audit import exports, services, views
from course_audit.models import Course, CourseEvent, PageView, SisBatch
from course_audit.recording import display_name

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


def body(response) -> str:
    return response.content.decode()


def streamed(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def pages_of(course: Course) -> list[str]:
    return [
        reverse("course_audit:course_history", args=[course.pk]),
        reverse("course_audit:course_export", args=[course.pk]) + "?format=csv",
        reverse("course_audit:course_export", args=[course.pk]) + "?format=jsonl",
        reverse("course_audit:account_history", args=[course.account_id]),
        reverse("course_audit:account_export", args=[course.account_id]),
    ]


# --- scoping -------------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_login_page(client, course):
    for url in [reverse("course_audit:home"), *pages_of(course)]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_the_site_root_and_login_page(client, make_user):
    assert client.get("/")["Location"] == reverse("course_audit:home")
    user = make_user("registrar")
    response = client.post(reverse("login"), {"username": user.get_username(), "password": "demo"})
    assert response.status_code == 302
    assert response["Location"] == reverse("course_audit:home")


def test_registrar_sees_every_course_and_account(registrar_browser, course, chemistry):
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    for url in [*pages_of(course), *pages_of(chem)]:
        assert registrar_browser.get(url).status_code == 200, url


def test_dept_admin_gets_403_outside_its_department(dept_admin_browser, course, chemistry):
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    for url in pages_of(course):
        assert dept_admin_browser.get(url).status_code == 200, url
    for url in pages_of(chem):
        assert dept_admin_browser.get(url).status_code == 403, url
    college = chemistry.parent
    assert (
        dept_admin_browser.get(
            reverse("course_audit:account_history", args=[college.pk])
        ).status_code
        == 403
    )


def test_another_tenant_is_404(dept_admin_browser, other_root):
    foreign = services.course_create(account=other_root, name="Rival 101")
    for url in pages_of(foreign):
        assert dept_admin_browser.get(url).status_code == 404, url
    missing = reverse("course_audit:course_history", args=[10**12])
    assert dept_admin_browser.get(missing).status_code == 404


def test_a_member_without_the_permission_gets_403(browser, root_account, teacher_role, course):
    teacher = browser("teacher", (root_account, teacher_role))
    for url in pages_of(course):
        assert teacher.get(url).status_code == 403, url


def test_home_searches_only_auditable_courses(dept_admin_browser, course, chemistry, department):
    services.course_create(account=chemistry, name="Biology of molecules", course_code="CHEM9")
    home = reverse("course_audit:home")
    html = body(dept_admin_browser.get(home, {"q": "biology"}))
    assert "Biology 101" in html
    assert "Biology of molecules" not in html
    # by SIS id and code too
    assert "Biology 101" in body(dept_admin_browser.get(home, {"q": "BIO101-F"}))
    assert "Biology 101" in body(dept_admin_browser.get(home, {"q": "bio101"}))
    assert dept_admin_browser.get(home, {"q": "bio\x00"}).status_code == 200
    tree = body(dept_admin_browser.get(home))
    assert reverse("course_audit:account_history", args=[department.pk]) in tree
    assert "Chemistry" not in tree


def test_short_searches_match_prefixes(registrar_browser, course, make_course):
    """Under three characters a trigram index cannot serve a substring: prefixes only."""
    make_course(name="Zoology 9", course_code="ZOO9", sis_course_id="Z-9")
    home = reverse("course_audit:home")
    assert "Zoology 9" in body(registrar_browser.get(home, {"q": "zo"}))
    assert "Zoology 9" not in body(registrar_browser.get(home, {"q": "oo"}))  # inside a name
    assert "Zoology 9" in body(registrar_browser.get(home, {"q": "ool"}))  # three: substring
    assert "Biology 101" in body(registrar_browser.get(home, {"q": "b"}))
    assert "Biology 101" not in body(registrar_browser.get(home, {"q": "y"}))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm is PostgreSQL's")
def test_the_course_search_has_trigram_indexes_on_postgresql(registrar_browser, course):
    from course_audit import selectors

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'course_audit_course'"
            " AND indexdef LIKE '%gin_trgm_ops%' ORDER BY 1"
        )
        assert [row[0] for row in cursor.fetchall()] == [
            "course_audit_course_course_code_trgm",
            "course_audit_course_name_trgm",
            "course_audit_course_sis_course_id_trgm",
        ]
        # the planner can answer the page's own query from them (no table scan)
        query = selectors.Course.objects.filter(
            selectors.Q(name__icontains="iolog")
            | selectors.Q(course_code__icontains="iolog")
            | selectors.Q(sis_course_id__icontains="iolog")
        )
        sql, params = query.query.sql_with_params()
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")  # not the (name, id) walk
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "_trgm" in plan and "Seq Scan" not in plan, plan


def test_home_shows_the_account_tree(registrar_browser, root_account, college, department):
    html = body(registrar_browser.get(reverse("course_audit:home")))
    # nested lists: the department sits inside the college, inside the root
    root_at = html.index(">State University<")
    college_at = html.index(">College of Science<")
    department_at = html.index(">Biology<")
    assert root_at < college_at < department_at
    assert html.count('<ul class="account-tree">') == 3


def test_home_shows_recent_activity_by_day_in_what_the_viewer_may_audit(
    dept_admin_browser, course, chemistry, add_events
):
    chem = services.course_create(account=chemistry, name="Chemistry 200")
    add_events(course, 2, when=T0, event_type="published")
    add_events(course, 1, when=T0 - dt.timedelta(days=1), event_type="concluded")
    add_events(chem, 1, when=T0 + dt.timedelta(hours=1), event_type="published")
    html = body(dept_admin_browser.get(reverse("course_audit:home")))
    recent = html[html.index('id="recent-heading"') : html.index('id="accounts-heading"')]
    # Newest day first, each a heading of its own, with the course linked.
    assert recent.count('<h3 class="day">') == 3  # creation today, 3 March, 2 March
    assert recent.index("March 3, 2025") < recent.index("March 2, 2025")
    history = reverse("course_audit:course_history", args=[course.pk])
    assert recent.count(f'<a href="{history}">Biology 101</a>') == 4  # created, 3 added
    # Another department's events are not the viewer's to see.
    assert "Chemistry 200" not in recent


def test_home_recent_activity_is_bounded_and_says_when_there_is_none(
    dept_admin_browser, registrar_browser, browser, course, add_events
):
    add_events(course, views.RECENT_EVENTS + 5, when=T0, step=dt.timedelta(minutes=1))
    html = body(registrar_browser.get(reverse("course_audit:home")))
    recent = html[html.index('id="recent-heading"') : html.index('id="accounts-heading"')]
    assert recent.count('<li class="event') == views.RECENT_EVENTS
    assert f"The newest {views.RECENT_EVENTS} events" in recent
    nobody = browser("nobody")
    html = body(nobody.get(reverse("course_audit:home")))
    assert "No events yet in the courses you may audit." in html


# --- filters -------------------------------------------------------------------------------


@pytest.fixture
def mixed(course, add_events, make_user):
    """Four events, one per day, differing in type, source and user."""
    someone = make_user("someone")
    add_events(
        course,
        1,
        when=T0,
        event_type="updated",
        event_source="manual",
        user=someone,
        user_name="Some One",
    )
    add_events(
        course,
        1,
        when=T0 + dt.timedelta(days=1),
        event_type="published",
        event_source="api",
        event_data={},
    )
    add_events(
        course,
        1,
        when=T0 + dt.timedelta(days=2),
        event_type="concluded",
        event_source="sis",
        event_data={},
    )
    add_events(
        course,
        1,
        when=T0 + dt.timedelta(days=3),
        event_type="deleted",
        event_source="manual",
        event_data={},
    )
    return someone


def timeline_types(html: str) -> list[str]:
    return re.findall(r'<li class="event event-([a-z_]+)"', html)


def test_filters_narrow_the_timeline(registrar_browser, course, mixed):
    url = reverse("course_audit:course_history", args=[course.pk])
    get = registrar_browser.get
    everything = ["created", "deleted", "concluded", "published", "updated"]
    assert timeline_types(body(get(url))) == everything  # the course was created today
    only = get(url, {"event_type": ["published", "deleted"]})
    assert timeline_types(body(only)) == ["deleted", "published"]
    assert timeline_types(body(get(url, {"event_source": "sis"}))) == ["concluded"]
    assert timeline_types(body(get(url, {"user_id": mixed.pk}))) == ["updated"]
    # an end date includes that whole day
    dates = {"start_time": "2025-03-04", "end_time": "2025-03-05"}
    assert timeline_types(body(get(url, dates))) == ["concluded", "published"]
    # the filters stay in the form, so the URL can be bookmarked
    html = body(only)
    assert 'value="published" checked' in html
    assert 'value="updated" checked' not in html


def test_a_bad_filter_is_400_with_a_message(registrar_browser, course):
    url = reverse("course_audit:course_history", args=[course.pk])
    response = registrar_browser.get(url, {"start_time": "yesterday"})
    assert response.status_code == 400
    assert "is not an ISO 8601 date-time" in body(response)
    assert 'role="alert"' in body(response)
    response = registrar_browser.get(url, {"start_time": "2025-03-05", "end_time": "2025-03-01"})
    assert response.status_code == 400
    assert "start_time must not be after end_time" in body(response)
    assert registrar_browser.get(url, {"after": "forged"}).status_code == 400
    export = reverse("course_audit:course_export", args=[course.pk])
    assert registrar_browser.get(export, {"start_time": "nope"}).status_code == 400
    assert registrar_browser.get(export, {"format": "xlsx"}).status_code == 400


# --- paging --------------------------------------------------------------------------------


def walk(client: Client, url: str, rel: str) -> tuple[list[str], list[str]]:
    """Follow ``rel`` links from ``url``; the events seen, page by page."""
    seen: list[str] = []
    pages: list[str] = []
    while url:
        html = body(client.get(url))
        pages.append(url)
        seen += re.findall(r'data-event="([0-9a-f-]+)"', html)
        found = re.search(rf'<a href="(\?[^"]*)" rel="{rel}"', html)
        url = (url.split("?")[0] + found.group(1).replace("&amp;", "&")) if found else ""
    return seen, pages


def test_older_and_newer_walk_every_event_once(registrar_browser, course, add_events):
    # many events on one timestamp (a bulk SIS import), then some a second apart
    add_events(course, 40, when=T0, event_source="sis")
    add_events(course, 20, when=T0 + dt.timedelta(hours=1), step=dt.timedelta(seconds=1))
    expected = [
        str(uuid)
        for uuid in CourseEvent.objects.filter(course=course)
        .order_by("-created_at", "-id")
        .values_list("uuid", flat=True)
    ]
    assert len(expected) == 61
    url = reverse("course_audit:course_history", args=[course.pk])
    older, pages = walk(registrar_browser, url, "next")
    assert older == expected
    assert len(pages) == 3  # 25 + 25 + 11
    assert "page=" not in "".join(pages)  # no page numbers
    # back from the last page to the first
    newer, _ = walk(registrar_browser, pages[-1], "prev")
    newest_first_pages = [expected[50:], expected[25:50], expected[:25]]
    assert newer == [uuid for page in newest_first_pages for uuid in page]


def test_the_viewer_chooses_the_page_size(registrar_browser, course, add_events):
    add_events(course, 30, when=T0, step=dt.timedelta(seconds=1))
    url = reverse("course_audit:course_history", args=[course.pk])
    older, pages = walk(registrar_browser, url + "?per_page=10", "next")
    assert len(older) == 31 and len(pages) == 4  # 10 + 10 + 10 + 1
    assert all("per_page=10" in page for page in pages)  # the links keep it
    html = body(registrar_browser.get(url, {"per_page": "10"}))
    assert "<option selected>10</option>" in html
    # anything but a listed size is the default, never an error
    for odd in ["7", "1000", "x", ""]:
        html = body(registrar_browser.get(url, {"per_page": odd}))
        assert html.count('data-event="') == 25, odd


# --- exports -------------------------------------------------------------------------------


def test_csv_export_is_exactly_the_filtered_history(registrar_browser, course, mixed):
    url = reverse("course_audit:course_export", args=[course.pk])
    march = {"start_time": "2025-03-01", "end_time": "2025-03-31"}
    response = registrar_browser.get(url, {"format": "csv", "event_source": "manual", **march})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    expected = CourseEvent.objects.filter(
        course=course, event_source="manual", created_at__year=2025
    ).order_by("-created_at", "-id")
    assert [row["id"] for row in rows] == [str(event.uuid) for event in expected]
    assert [row["event_type"] for row in rows] == ["deleted", "updated"]
    assert rows[1]["created_at"] == "2025-03-03T12:00:00+00:00"
    assert dt.datetime.fromisoformat(rows[0]["created_at"]) == T0 + dt.timedelta(days=3)
    assert rows[1]["user_name"] == "Some One"
    assert json.loads(rows[1]["event_data"]) == {"name": ["a", "b"]}


def test_csv_export_neutralises_formulas(registrar_browser, make_course, add_events):
    course = make_course(name='=HYPERLINK("http://evil")')
    add_events(course, 1, when=T0, user_name="@SUM(A1)")
    add_events(course, 1, when=T0, user_name="+1", event_data={"name": ["-2", "x"]})
    url = reverse("course_audit:course_export", args=[course.pk])
    text = streamed(registrar_browser.get(url))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["course_name"] for row in rows} == {'\'=HYPERLINK("http://evil")'}
    assert {row["user_name"] for row in rows} >= {"'@SUM(A1)", "'+1"}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_jsonl_export_parses(registrar_browser, course, mixed):
    url = reverse("course_audit:course_export", args=[course.pk])
    response = registrar_browser.get(url, {"format": "jsonl", "event_type": "published"})
    assert response.status_code == 200
    lines = [json.loads(line) for line in streamed(response).splitlines()]
    assert [line["event_type"] for line in lines] == ["published"]
    assert lines[0]["event_source"] == "api"
    assert lines[0]["created_at"] == "2025-03-04T12:00:00+00:00"


def test_export_walks_past_one_chunk(registrar_browser, course, add_events, monkeypatch):
    add_events(course, 7, when=T0)
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 3)
    text = streamed(registrar_browser.get(reverse("course_audit:course_export", args=[course.pk])))
    ids = [row["id"] for row in csv.DictReader(io.StringIO(text))]
    assert len(ids) == len(set(ids)) == 8


def test_account_export_and_subaccounts(registrar_browser, college, course):
    url = reverse("course_audit:account_export", args=[college.pk])
    assert len(list(csv.DictReader(io.StringIO(streamed(registrar_browser.get(url)))))) == 0
    text = streamed(registrar_browser.get(url, {"include_subaccounts": "1"}))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["course_id"] for row in rows] == [str(course.pk)]
    page = reverse("course_audit:account_history", args=[college.pk])
    assert timeline_types(body(registrar_browser.get(page))) == []
    html = body(registrar_browser.get(page, {"include_subaccounts": "1"}))
    assert timeline_types(html) == ["created"]
    assert "Biology 101" in html


# --- rendering -----------------------------------------------------------------------------


def test_a_script_in_a_name_is_shown_not_run(registrar_browser, course):
    services.course_update(course=course, name="<script>alert(1)</script>")
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[course.pk])))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_diff_table(registrar_browser, course):
    services.course_update(
        course=course,
        public_description="x" * 500,
        start_at=dt.datetime(2025, 9, 1, 8, 0, tzinfo=dt.UTC),
    )
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[course.pk])))
    assert '<table class="diff">' in html
    assert '<th scope="row">Public description</th>' in html
    assert '<th scope="row">Account</th><td data-label="Before"><span class="null"' in html
    assert '</td><td data-label="After">Biology</td></tr>' in html  # an account id, by name
    assert '<span class="null"' in html and "—" in html  # the blank side of a change
    assert '<details class="fold"><summary>' + "x" * 120 + "…</summary>" in html
    assert "Sept. 1, 2025, 8 a.m." in html  # a date, readable
    assert "Biology 101" in html


def test_who_and_links(registrar_browser, make_course, course, make_user):
    names = {"first_name": "J.", "last_name": "Smith"}
    if not hasattr(get_user_model(), "first_name"):  # a host's user model without names
        names = {}
    someone = make_user("jsmith", **names)
    copy = make_course(name="Biology 101 (copy)")
    services.course_copy(source=course, destination=copy, user=someone)
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[copy.pk])))
    assert 'badge badge-copied_from">Copied from<' in html
    shown = display_name(someone)
    assert f'user_id={someone.pk}" title="Show only events by this user">{shown}</a>' in html
    assert reverse("course_audit:course_history", args=[course.pk]) in html
    assert "system" in html  # the course's own creation, outside any request


def test_sis_batches_are_named(registrar_browser, course, add_events, root_account):
    batch = SisBatch.objects.create(root_account=root_account)
    add_events(course, 1, when=T0, event_source="sis", sis_batch=batch, user_name="")
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[course.pk])))
    assert f"SIS import #{batch.pk}" in html


def test_the_activity_chart(registrar_browser, course, mixed):
    url = reverse("course_audit:course_history", args=[course.pk])
    html = body(registrar_browser.get(url, {"start_time": "2025-03-01", "end_time": "2025-03-10"}))
    assert '<svg class="chart-svg"' in html
    assert 'role="img"' in html
    assert html.count("<rect ") == 4  # one segment per event, each a different type
    table = html[html.index('<details class="chart-data">') :]
    assert "Events per day and type" in table
    assert '<th scope="row">March 3, 2025</th>' in table
    # a long range is drawn per week
    html = body(registrar_browser.get(url, {"start_time": "2024-01-01", "end_time": "2025-03-10"}))
    assert "Events per week" in html
    # the ends of the calendar: no overflow, and a bounded number of bars
    for dates in [
        {"start_time": "0001-01-01", "end_time": "9999-12-31"},
        {"end_time": "0001-01-01"},
        {"start_time": "9999-12-31"},
    ]:
        response = registrar_browser.get(url, dates)
        assert response.status_code == 200, dates
    html = body(registrar_browser.get(url, {"start_time": "1990-01-01"}))
    assert "The chart shows the last two years" in html
    assert html.count("<g>") <= 106


def test_the_chart_defaults_to_the_range_of_the_events(registrar_browser, course, mixed):
    """Without dates the chart spans the oldest to the newest matching event, so events of
    March 2025 are drawn even though the last 90 days hold only the course's creation."""
    url = reverse("course_audit:course_history", args=[course.pk])
    html = body(registrar_browser.get(url))
    table = html[html.index('<details class="chart-data">') :]
    assert "Events per week" in table  # March 2025 to today is longer than 92 days
    row = table[table.index('<th scope="row">March 3, 2025</th>') :]
    assert row[: row.index("</tr>")].endswith("<td>4</td>")  # the week's total
    assert "The chart shows the last two years" not in html
    # only an end date: the chart starts at the oldest event, per day
    html = body(registrar_browser.get(url, {"end_time": "2025-03-10"}))
    assert "Events per day and type" in html
    assert '<th scope="row">March 3, 2025</th>' in html
    assert '<th scope="row">March 1, 2025</th>' not in html


def test_the_chart_counts_a_bounded_number_of_events(registrar_browser, course, mixed, monkeypatch):
    """Past ``CHART_MAX_EVENTS`` the chart starts on the first whole day the newest ones
    cover (a subtree of millions would otherwise be aggregated on every page view)."""
    monkeypatch.setattr(views, "CHART_MAX_EVENTS", 2)
    url = reverse("course_audit:course_history", args=[course.pk])
    html = body(registrar_browser.get(url))
    # newest first: the creation (today), March 6, 5, 4, 3; the third newest is March 5,
    # so the chart starts on March 6 and counts two events in all
    assert "The chart covers the days of the newest 2 events" in html
    table = html[html.index('<details class="chart-data">') :]
    row = table[table.index('<th scope="row">March 3, 2025</th>') :]
    assert row[: row.index("</tr>")].endswith("<td>1</td>")
    assert "2 events from March 6, 2025" in html
    # the list itself is not capped
    assert html.count('data-event="') == 5


def test_times_are_shown_in_the_viewers_time_zone(registrar_browser, course, add_events, settings):
    add_events(course, 1, when=T0)
    url = reverse("course_audit:course_history", args=[course.pk])
    assert 'title="2025-03-03 12:00:00 UTC (+0000)"' in body(registrar_browser.get(url))
    settings.TIME_ZONE = "America/Chicago"
    assert 'title="2025-03-03 06:00:00 CST (-0600)"' in body(registrar_browser.get(url))
    # the viewer's own choice wins, and is a POST with CSRF protection
    response = registrar_browser.post(
        reverse("course_audit:set_timezone"), {"timezone": "Asia/Tokyo", "next": url}
    )
    assert response.status_code == 302 and response["Location"] == url
    assert 'title="2025-03-03 21:00:00 JST (+0900)"' in body(registrar_browser.get(url))
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(registrar_browser.user)
    assert (
        guarded.post(reverse("course_audit:set_timezone"), {"timezone": "UTC"}).status_code == 403
    )
    assert 'name="csrfmiddlewaretoken"' in body(registrar_browser.get(url))


def test_the_page_view_is_one_click_away(
    registrar_browser, dept_admin_browser, chemistry, add_events
):
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    view = PageView.objects.create(
        request_id=uuid.uuid4(),
        url="http://testserver/admin/course_audit/course/1/change/",
        http_method="POST",
        account=chemistry,
        context_type="Course",
        context_id=chem.pk,
        user_agent="<b>agent</b>",
    )
    add_events(chem, 1, when=T0, page_view=view)
    link = reverse("course_audit:page_view", args=[view.pk])
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[chem.pk])))
    assert html.count(f'href="{link}"') == 1  # only the event recorded in that request
    page = registrar_browser.get(link)
    assert page.status_code == 200
    assert "POST http://testserver/admin/course_audit/course/1/change/" in body(page)
    assert "&lt;b&gt;agent&lt;/b&gt;" in body(page)
    assert 'data-event="' in body(page)
    assert dept_admin_browser.get(link).status_code == 403
    assert (
        registrar_browser.get(reverse("course_audit:page_view", args=[uuid.uuid4()])).status_code
        == 404
    )


def test_pages_are_accessible_landmarks(registrar_browser, course):
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[course.pk])))
    assert '<main id="main"' in html
    assert 'class="skip-link" href="#main"' in html
    assert '<label for="f-start">' in html and 'id="f-start"' in html
    assert 'method="get" class="filters"' in html
    assert "course_audit/audit.css" in html
    assert "Log out registrar" in html  # the host's own header (templates/ override)


def test_the_page_costs_the_same_whatever_the_number_of_events(
    registrar_browser, course, add_events, make_user
):
    url = reverse("course_audit:course_history", args=[course.pk])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert registrar_browser.get(url).status_code == 200
        return len(captured)

    add_events(course, 2, when=T0, user=make_user())
    few = queries()
    for _ in range(10):
        add_events(course, 3, when=T0, user=make_user(), event_source="api")
    assert queries() == few


def test_a_page_of_a_subtree_costs_the_same_queries_at_every_page_size(
    registrar_browser, college, course, chemistry, add_events, make_user
):
    # Every kind of link an event shows: a user, another course, a request, a SIS batch,
    # and diffs naming accounts; and events of both accounts on each page.
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    batch = SisBatch.objects.create(root_account=college.parent)
    for index in range(60):
        view = PageView.objects.create(request_id=uuid.uuid4(), url="http://testserver/x")
        add_events(
            course if index % 2 else chem,
            1,
            when=T0 + dt.timedelta(seconds=index),
            user=make_user(),
            related_course=chem if index % 2 else course,
            page_view=view,
            sis_batch=batch if index % 3 == 0 else None,
            event_data={"account_id": [chemistry.pk, course.account_id], "name": ["a", "<b>"]},
        )
    url = reverse("course_audit:account_history", args=[college.pk])

    def queries(per_page: int) -> int:
        params = {"include_subaccounts": "1", "per_page": str(per_page)}
        with CaptureQueriesContext(connection) as captured:
            response = registrar_browser.get(url, params)
        assert response.status_code == 200
        assert body(response).count('<li class="event') == per_page
        assert "&lt;b&gt;" in body(response) and "<b>" not in body(response)
        return len(captured)

    assert queries(10) == queries(50)


def test_paging_an_account_with_its_subaccounts(
    registrar_browser, college, course, chemistry, add_events
):
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    add_events(course, 30, when=T0, step=dt.timedelta(seconds=2))
    add_events(chem, 30, when=T0 + dt.timedelta(seconds=1), step=dt.timedelta(seconds=2))
    add_events(chem, 10, when=T0)  # ties across both accounts' index ranges
    expected = [
        str(uuid)
        for uuid in CourseEvent.objects.filter(account__in=[course.account, chemistry])
        .order_by("-created_at", "-id")
        .values_list("uuid", flat=True)
    ]
    url = reverse("course_audit:account_history", args=[college.pk]) + "?include_subaccounts=1"
    older, pages = walk(registrar_browser, url, "next")
    assert older == expected
    assert len(pages) == 3
    newer, _ = walk(registrar_browser, pages[-1], "prev")
    assert newer == expected[50:] + expected[25:50] + expected[:25]


def test_the_apps_own_frame_without_a_host_override(registrar_browser, course, settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": []}]
    html = body(registrar_browser.get(reverse("course_audit:course_history", args=[course.pk])))
    assert '<a class="site-name" href="/audit/">Course audit</a>' in html
    assert "Log out" not in html
    assert '<main id="main"' in html


EVENTS_TABLE = f'"{CourseEvent._meta.db_table}"'


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"field": ["start_at", "conclude_at"]},
        {"event_type": "updated", "end_time": "2025-03-05"},
    ],
)
def test_the_chart_is_one_query(registrar_browser, course, mixed, params):
    """The chart's ends, its cap and its counts come from one read of the newest events
    (``selectors.newest_day_counts``): a history page reads the events twice, its list and
    its chart, whatever the filters."""
    url = reverse("course_audit:course_history", args=[course.pk])
    with CaptureQueriesContext(connection) as captured:
        response = registrar_browser.get(url, params)
    assert response.status_code == 200
    reads = [
        query["sql"]
        for query in captured
        if query["sql"].startswith(("SELECT", "(SELECT")) and EVENTS_TABLE in query["sql"]
    ]
    assert len(reads) == 2, reads


def test_a_last_day_beyond_the_cap_is_counted_in_full(
    registrar_browser, course, add_events, monkeypatch
):
    """When the newest ``CHART_MAX_EVENTS`` all fall on the range's last day, that day is
    the chart and every one of its events is counted, not only the newest."""
    monkeypatch.setattr(views, "CHART_MAX_EVENTS", 2)
    add_events(course, 5, when=T0, step=dt.timedelta(minutes=1))
    url = reverse("course_audit:course_history", args=[course.pk])
    response = registrar_browser.get(url, {"end_time": "2025-03-03"})
    chart = response.context["chart"]
    assert chart.capped_at == 2
    assert (chart.start, chart.end) == (dt.date(2025, 3, 3), dt.date(2025, 3, 3))
    assert chart.total == 5
