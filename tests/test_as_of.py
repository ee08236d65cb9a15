"""The as-of page and API: a course's state at a moment, and two moments compared."""

from __future__ import annotations

import datetime as dt
import html as html_module
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import translation

from course_audit import services
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent
from tests.test_replay import forget_history

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 9, 1, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)

ACCESS_RECORD_INSERT = 'INSERT INTO "course_audit_accessrecord"'


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
    second = "2025-09-01T08%3A00%3A00Z"
    link = f"{history}?start_time={second}&amp;end_time={second}#event-{created.uuid}"
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
    assert "the course did not exist yet (the log records its creation on" in text(response)
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
    assert "The log cannot say what the course was on" in text(early)


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


# --- the API -------------------------------------------------------------------------------


def api_url(course: Course | str) -> str:
    ref = course if isinstance(course, str) else str(course.pk)
    return reverse("course_audit_api:audit-course-as-of", kwargs={"course_id": ref})


def test_the_api_answers_the_course_at_a_moment(caller, root_account, admin_role, timeline):
    registrar = caller("registrar", (root_account, admin_role))
    response = registrar.get(api_url(timeline), at="2025-09-01T08:10:00Z")
    assert response.status_code == 200, response.content
    body = response.json()
    renamed = CourseEvent.objects.get(course=timeline, event_type="updated")
    created = CourseEvent.objects.get(course=timeline, event_type="created")
    assert body["at"] == "2025-09-01T08:10:00Z"
    assert body["course_id"] == timeline.pk
    assert (body["existed"], body["created_at"]) == (True, "2025-09-01T08:00:00Z")
    assert list(body["fields"]) == [
        "name",
        "course_code",
        "sis_course_id",
        "account_id",
        "start_at",
        "conclude_at",
        "is_public",
        "public_description",
    ]
    assert body["fields"]["name"] == {
        "value": "Cells",
        "known": True,
        "event_id": renamed.pk,
        "event_uuid": str(renamed.uuid),
        "set_at": "2025-09-01T08:10:00Z",
        "truncated": False,
    }
    assert body["fields"]["start_at"]["value"] == "2025-09-08T09:30:00Z"
    assert body["fields"]["account_id"]["value"] == timeline.account_id
    assert body["fields"]["course_code"]["event_uuid"] == str(created.uuid)
    assert body["workflow_state"]["value"] == "unpublished"
    assert body["workflow_state"]["event_id"] == created.pk
    # A second earlier: before the rename. By SIS id too.
    earlier = registrar.get(api_url("sis_course_id:B-1"), at="2025-09-01T08:09:59Z").json()
    assert earlier["fields"]["name"]["value"] == "Biology 101"
    published = registrar.get(api_url(timeline), at="2025-09-01T09:20:00+01:00").json()
    assert published["workflow_state"]["value"] == "available"


def test_the_api_says_what_the_log_cannot_replay(caller, root_account, admin_role, department):
    registrar = caller("registrar", (root_account, admin_role))
    course = services.course_create(account=department, name="Legacy", course_code="LEG")
    forget_history(course)
    with audit_context(occurred_at=T0):
        services.course_update(course=course, name="Legacy 2")
    body = registrar.get(api_url(course), at="2025-09-02").json()
    assert body["existed"] is True and body["created_at"] is None
    assert body["fields"]["name"]["value"] == "Legacy 2"
    unknown = {"value": None, "known": False, "event_id": None, "event_uuid": None}
    for name in ("course_code", "sis_course_id", "account_id"):
        assert body["fields"][name] == {**unknown, "set_at": None, "truncated": False}
    assert body["workflow_state"]["known"] is False
    before = registrar.get(api_url(course), at="2025-08-01").json()
    assert before["existed"] is None


def test_the_api_before_the_course_existed(caller, root_account, admin_role, timeline):
    registrar = caller("registrar", (root_account, admin_role))
    body = registrar.get(api_url(timeline), at="2025-08-31T23:59:59Z").json()
    assert (body["existed"], body["created_at"]) == (False, "2025-09-01T08:00:00Z")
    assert not any(value["known"] for value in body["fields"].values())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "at: is required: an ISO 8601 date-time"),
        ({"at": ""}, "at: is required: an ISO 8601 date-time"),
        ({"at": "yesterday"}, "at: 'yesterday' is not an ISO 8601 date-time"),
        ({"at": "0001-01-01T00:00:00+05:00"}, "at: '0001-01-01T00:00:00+05:00' is out of the"),
        ({"at": "9" * 2000}, "at: is too long (2000 characters; at most 1000)"),
    ],
)
def test_a_bad_moment_is_an_api_400(caller, root_account, admin_role, timeline, params, message):
    registrar = caller("registrar", (root_account, admin_role))
    response = registrar.get(api_url(timeline), **params)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"].startswith(message), error


def test_the_api_is_scoped_like_the_listing(
    caller, root_account, admin_role, teacher_role, department, other_root, timeline, chemistry
):
    dept_admin = caller("dept_admin", (department, admin_role))
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    foreign = services.course_create(account=other_root, name="Rival 101")
    at = {"at": "2025-09-02"}
    assert dept_admin.get(api_url(timeline), **at).status_code == 200
    forbidden = dept_admin.get(api_url(chem), **at)
    assert forbidden.status_code == 403
    assert forbidden.json()["status"] == "unauthorized"
    assert dept_admin.get(api_url(foreign), **at).status_code == 404
    assert dept_admin.get(api_url("999999999"), **at).status_code == 404
    # The course is looked up (and refused) before the moment is read.
    assert dept_admin.get(api_url(foreign), at="garbage").status_code == 404
    teacher = caller("teacher", (root_account, teacher_role))
    assert teacher.get(api_url(timeline), **at).status_code == 403
    anonymous = teacher.client.get(api_url(timeline), at)
    assert anonymous.status_code == 401


def test_the_api_reads_the_history_in_one_query(
    caller, root_account, admin_role, timeline, add_events, django_assert_num_queries
):
    registrar = caller("registrar", (root_account, admin_role))
    registrar.get(api_url(timeline), at="2025-09-02")  # the token's first use stamps it
    add_events(timeline, 50, when=T0 + MINUTE, step=dt.timedelta(seconds=1))
    # The token (with the grants), the course, its events; and, by name, the access record.
    with django_assert_num_queries(3 + 1) as captured:
        response = registrar.get(api_url(timeline), at="2025-09-02")
    assert response.status_code == 200
    assert [q["sql"].startswith(ACCESS_RECORD_INSERT) for q in captured.captured_queries] == [
        False,
        False,
        False,
        True,
    ]
    assert response.json()["fields"]["name"]["value"] == "Cells"  # the rename came after them


def test_the_page_costs_the_same_whatever_the_history(
    registrar_browser, timeline, add_events, django_assert_num_queries
):
    query = {"at": "2025-09-02", "compare": "2025-08-01"}
    registrar_browser.get(page_url(timeline), query)
    add_events(timeline, 50, when=T0 + MINUTE, step=dt.timedelta(seconds=1))
    # The session, its user, the course, the grants, the events, the accounts' names; and,
    # by name, the access record.
    with django_assert_num_queries(6 + 1) as captured:
        assert registrar_browser.get(page_url(timeline), query).status_code == 200
    inserts = [q for q in captured.captured_queries if q["sql"].startswith(ACCESS_RECORD_INSERT)]
    assert len(inserts) == 1


def test_the_api_is_documented_and_answers_as_documented(
    client, caller, root_account, admin_role, teacher_role, timeline
):
    from tests.test_api_schema import conforms_with_headers

    schema = client.get("/api/schema/", {"format": "json"}).json()
    path = "/api/v1/audit/course/courses/{course_id}/as_of"
    operation = schema["paths"][path]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["at"]["required"] is True
    assert parameters["at"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["course_id"]["in"] == "path"
    assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
    registrar = caller("registrar", (root_account, admin_role))
    teacher = caller("teacher", (root_account, teacher_role))
    for response in (
        registrar.get(api_url(timeline), at="2025-09-01T08:10:00Z"),
        registrar.get(api_url(timeline), at="2025-08-01"),
        registrar.get(api_url(timeline), at="never"),
        registrar.get(api_url("999999999"), at="2025-08-01"),
        teacher.get(api_url(timeline), at="2025-08-01"),
        registrar.client.get(api_url(timeline), {"at": "2025-08-01"}),
    ):
        conforms_with_headers(schema, path, "get", response)


def test_the_page_in_spanish(registrar_browser, department):
    course = services.course_create(account=department, name="Legacy", course_code="LEG")
    forget_history(course)
    with audit_context(occurred_at=T0):
        services.course_update(course=course, name="Legado")
    # The requests activate Spanish in this thread; the tests after this one read English.
    with translation.override("en"):
        response = registrar_browser.get(
            page_url(course),
            {"at": "2025-09-02", "compare": "2025-09-01"},
            HTTP_ACCEPT_LANGUAGE="es",
        )
        bad = registrar_browser.get(page_url(course), {"at": "ayer"}, HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 200 and response["Content-Language"] == "es"
    shown = text(response)
    assert "El curso Legado en un momento dado" in shown
    assert "no está en el registro (se fijó antes de que empezara el registro)" in shown
    assert "fijado por Actualizado" in shown
    assert "difiere" in shown
    assert bad.status_code == 400 and "En el momento:" in text(bad)
