"""The as-of page and API: a course's state at a moment, and two moments compared."""

from __future__ import annotations

import datetime as dt
import html as html_module
import re
from typing import Any

import pytest
from django.urls import reverse

from course_audit import services
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent
from tests.test_replay import forget_history

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 9, 1, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def timeline(department, make_user) -> Course:
    """Created at T0, renamed and dated at T0+10', published at T0+20'."""
    someone = make_user("changer")
    with audit_context(user=someone, occurred_at=T0):
        course = services.course_create(
            account=department, name="Biology 101", course_code="BIO101", sis_course_id="B-1"
        )
    with audit_context(user=someone, occurred_at=T0 + 10 * MINUTE):
        services.course_update(
            course=course, name="Cells", start_at=dt.datetime(2025, 9, 8, 9, 30, tzinfo=dt.UTC)
        )
    with audit_context(user=someone, occurred_at=T0 + 20 * MINUTE):
        services.course_publish(course=course)
    return course


def page_url(course: Course) -> str:
    return reverse("course_audit:course_as_of", args=[course.pk])


def text(response: Any) -> str:
    return re.sub(
        r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))
    )


def row(response: Any, field: str) -> str:
    match = re.search(rf'<tr[^>]*data-field="{field}">(.*?)</tr>', response.content.decode(), re.S)
    assert match, field
    return match[1]


# --- the page ------------------------------------------------------------------------------


def test_the_page_shows_the_course_at_a_moment(registrar_browser, timeline):
    response = registrar_browser.get(page_url(timeline), {"at": "2025-09-01T08:05:00"})
    assert response.status_code == 200
    assert "Biology 101" in row(response, "name")
    assert "Cells" not in row(response, "name")
    assert "Unpublished" in row(response, "workflow_state")
    assert "Biology" in row(response, "account_id")  # the account by its name
    created = CourseEvent.objects.get(course=timeline, event_type="created")
    history = reverse("course_audit:course_history", args=[timeline.pk])
    link = f"{history}?start_time=2025-09-01T08%3A00%3A00Z&amp;end_time=2025-09-01T08%3A00%3A00Z#event-{created.uuid}"
    assert link in row(response, "name")
    # The value's event is on the page the link opens, with the anchor.
    target = registrar_browser.get(
        history, {"start_time": "2025-09-01T08:00:00Z", "end_time": "2025-09-01T08:00:00Z"}
    )
    assert f'id="event-{created.uuid}"' in target.content.decode()

    later = registrar_browser.get(page_url(timeline), {"at": "2025-09-01T08:20:00"})
    assert "Cells" in row(later, "name") and "Published" in row(later, "workflow_state")
    published = CourseEvent.objects.get(course=timeline, event_type="published")
    assert f"#event-{published.uuid}" in row(later, "workflow_state")


def test_the_moment_is_read_in_the_viewers_time_zone(registrar_browser, timeline):
    registrar_browser.post(reverse("course_audit:set_timezone"), {"timezone": "Asia/Tokyo"})
    # 17:09 in Tokyo is 08:09 UTC: before the rename.
    before = registrar_browser.get(page_url(timeline), {"at": "2025-09-01T17:09:59"})
    assert "Cells" not in row(before, "name")
    after = registrar_browser.get(page_url(timeline), {"at": "2025-09-01T17:10"})
    assert "Cells" in row(after, "name")
    # The input shows the moment in the viewer's zone.
    assert 'value="2025-09-01T17:10:00"' in after.content.decode()


def test_without_a_moment_it_is_now(registrar_browser, timeline):
    response = registrar_browser.get(page_url(timeline))
    assert response.status_code == 200
    assert "Cells" in row(response, "name") and "Published" in row(response, "workflow_state")


def test_two_moments_compared(registrar_browser, timeline):
    response = registrar_browser.get(
        page_url(timeline), {"at": "2025-09-01T08:00:00", "compare": "2025-09-01T08:30:00"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    differing = set(re.findall(r'<tr class="differs" data-field="([a-z_]+)">', html))
    assert differing == {"name", "start_at", "workflow_state"}
    assert html.count('<strong class="differs-tag">differs</strong>') == 3
    name = row(response, "name")
    assert name.index("Biology 101") < name.index("Cells")  # the first moment first


def test_before_the_course_existed(registrar_browser, timeline):
    response = registrar_browser.get(page_url(timeline), {"at": "2025-08-31"})
    assert response.status_code == 200
    assert "the course did not exist yet: the log records its creation" in text(response)
    assert "the course did not exist yet" in row(response, "name")
    assert "not in the log" not in text(response)


def test_fields_the_log_cannot_replay_say_so(registrar_browser, department):
    course = services.course_create(account=department, name="Legacy", course_code="LEG")
    forget_history(course)
    with audit_context(occurred_at=T0):
        services.course_update(course=course, name="Legacy 2")
    response = registrar_browser.get(page_url(course), {"at": "2025-09-02"})
    assert response.status_code == 200
    assert "Legacy 2" in row(response, "name")
    for field in ("course_code", "sis_course_id", "workflow_state"):
        assert "not in the log (set before recording began)" in row(response, field)
        assert "LEG" not in row(response, field)  # never the course's value of today
    early = registrar_browser.get(page_url(course), {"at": "2025-08-01"})
    assert "the log cannot say what it was then" in text(early)


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ({"at": "yesterday"}, "As of"),
        ({"at": "2025-13-01T00:00"}, "As of"),
        ({"at": "2025-09-01", "compare": "garbage"}, "Compare with"),
        ({"at": "x" * 5000}, "As of"),
        ({"at": "0001-01-01T00:00:00+05:00"}, "As of"),
    ],
)
def test_a_bad_moment_is_a_400_naming_it(registrar_browser, timeline, query, label):
    response = registrar_browser.get(page_url(timeline), query)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert f"{label}:" in text(response)
    assert 'data-field="' not in response.content.decode()


def test_the_page_is_scoped_like_the_history(
    registrar_browser, dept_admin_browser, browser, chemistry, other_root, root_account, timeline
):
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    foreign = services.course_create(account=other_root, name="Rival 101")
    assert dept_admin_browser.get(page_url(timeline)).status_code == 200
    assert dept_admin_browser.get(page_url(chem)).status_code == 403
    assert dept_admin_browser.get(page_url(foreign)).status_code == 404
    missing = reverse("course_audit:course_as_of", args=[10**12])
    assert registrar_browser.get(missing).status_code == 404
    anonymous = registrar_browser.__class__().get(page_url(timeline))
    assert anonymous.status_code == 302


def test_the_history_page_links_to_it(registrar_browser, timeline):
    history = registrar_browser.get(reverse("course_audit:course_history", args=[timeline.pk]))
    assert f'href="{page_url(timeline)}"' in history.content.decode()


def test_a_script_in_a_value_is_shown_not_run(registrar_browser, department):
    course = services.course_create(account=department, name="<script>alert(1)</script>")
    html = registrar_browser.get(page_url(course)).content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
