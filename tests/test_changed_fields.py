"""The changed-field and SIS batch filters (``field=``, ``sis_batch_id=``) on the API, the
pages and the exports, their indexes, and the SIS batch page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.db import connection
from django.urls import reverse

from course_audit.diff import TRACKED_FIELDS
from course_audit.filters import CourseEventFilterSet
from course_audit.models import CourseEvent, SisBatch, changed_field_index_name
from course_audit.pagination import keyset_rows
from course_audit.querysets import changed_field_q, changed_fields_q

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=1)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's indexes and plans"
)


@pytest.fixture
def changes(course, add_events):
    """One event of each kind of change, a minute apart, oldest first: updates of one field,
    of two, of another; a created event that set a date; a lifecycle event."""
    kinds = [
        ("updated", {"start_at": ["2025-01-01T00:00:00Z", "2025-01-08T00:00:00Z"]}),
        ("updated", {"name": ["A", "B"]}),
        (
            "updated",
            {
                "start_at": [None, "2025-02-01T00:00:00Z"],
                "conclude_at": [None, "2025-05-01T00:00:00Z"],
            },
        ),
        ("created", {"start_at": [None, "2025-01-01T00:00:00Z"], "created_source": "api"}),
        ("published", {}),
        ("updated", {"conclude_at": ["2025-05-01T00:00:00Z", "2025-05-08T00:00:00Z"]}),
        ("updated", {"is_public": [False, True]}),
    ]
    events = []
    for index, (event_type, data) in enumerate(kinds):
        [event] = add_events(
            course, 1, when=T0 + STEP * index, event_type=event_type, event_data=data
        )
        events.append(event)
    return events


def uuids(events) -> list[str]:
    return [str(event.uuid) for event in events]


# --- what "changed field X" means ----------------------------------------------------------


def test_changed_field_means_updated_events_whose_diff_has_it(course, changes):
    start, _name, both, created, published, conclude, _public = changes
    events = CourseEvent.objects.for_course(course).newest_first()
    assert list(events.filter(changed_field_q("start_at"))) == [both, start]
    assert list(events.filter(changed_field_q("conclude_at"))) == [conclude, both]
    # Several fields: the events that changed any of them, each once.
    assert list(events.filter(changed_fields_q(["start_at", "conclude_at"]))) == [
        conclude,
        both,
        start,
    ]
    assert list(events.filter(changed_field_q("course_code"))) == []
    assert created not in events.filter(changed_fields_q(TRACKED_FIELDS))
    assert published not in events.filter(changed_fields_q(TRACKED_FIELDS))


def test_only_a_tracked_field_can_be_asked_for():
    with pytest.raises(ValueError, match="'created_source' is not a tracked field"):
        changed_field_q("created_source")
    filterset = CourseEventFilterSet({"field": "start_at,colour"})
    assert not filterset.is_valid()
    assert "unknown value 'colour'" in filterset.errors["field"][0]


@pytest.mark.parametrize("direction", ["after", "before"])
def test_several_fields_read_as_branches_are_the_same_rows(
    course, department, add_events, direction
):
    # Events of both fields, some of each alone, in two accounts, sharing timestamps.
    genetics = department.__class__.objects.create(name="Genetics", parent=department)
    other = course.__class__.objects.create(name="Genes", account=genetics)
    for index in range(12):
        data = [
            {"start_at": [None, "2025-01-01T00:00:00Z"]},
            {"conclude_at": [None, "2025-01-01T00:00:00Z"]},
            {"start_at": [None, "x"], "conclude_at": [None, "y"]},
            {"name": ["a", "b"]},
        ][index % 4]
        add_events(
            course if index % 3 else other, 1, when=T0 + STEP * (index // 2), event_data=data
        )
    fields = ["start_at", "conclude_at"]
    base = CourseEvent.objects.for_accounts([department.pk, genetics.pk]).filter(
        changed_fields_q(fields)
    )
    expected = list(base.order_by("-created_at", "-id").values_list("id", flat=True))
    assert len(expected) == 9
    branches = [changed_field_q(field) for field in fields]
    partitions = ("account_id", [department.pk, genetics.pk])
    for values in (None, ("id", "created_at")):
        seen: list[int] = []
        position = None if direction == "after" else (T0 - STEP, 0)
        expected_order = list(reversed(expected)) if direction == "before" else expected
        while True:
            bound = {direction: position} if position else {}
            rows, more = keyset_rows(
                base, limit=4, partitions=partitions, branches=branches, fields=values, **bound
            )
            ids = [row["id"] if values else row.pk for row in rows]
            seen += ids if direction == "after" else list(reversed(ids))
            if not more:
                break
            last = rows[-1] if direction == "after" else rows[0]
            position = (last["created_at"], last["id"]) if values else (last.created_at, last.pk)
        assert seen == expected_order


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture
def registrar(caller, root_account, admin_role):
    return caller("registrar", (root_account, admin_role))


def api_walk(api, path: str, **params) -> list[dict]:
    response = api.get(path, **params)
    assert response.status_code == 200, response.content
    body = response.json()
    seen = list(body["events"])
    while 'rel="next"' in response["Link"]:
        next_url = response["Link"].split('rel="current",<')[1].split(">")[0]
        response = api.client.get(next_url, HTTP_AUTHORIZATION=f"Bearer {api.token}")
        assert response.status_code == 200, response.content
        seen.extend(response.json()["events"])
    return seen


@pytest.mark.parametrize("listing", ["course", "account", "subtree"])
def test_the_api_filters_on_changed_fields(registrar, course, college, changes, listing):
    start, _name, both, _created, _published, conclude, _public = changes
    path, extra = {
        "course": (f"/api/v1/audit/course/courses/{course.pk}", {}),
        "account": (f"/api/v1/audit/course/accounts/{course.account_id}", {}),
        "subtree": (f"/api/v1/audit/course/accounts/{college.pk}", {"include_subaccounts": "true"}),
    }[listing]
    dates = api_walk(registrar, path, field="start_at,conclude_at", per_page=2, **extra)
    assert [event["id"] for event in dates] == uuids([conclude, both, start])
    assert dates[1]["event_data"] == {
        "start_at": [None, "2025-02-01T00:00:00Z"],
        "conclude_at": [None, "2025-05-01T00:00:00Z"],
    }
    one = registrar.get(path, field="start_at", **extra).json()["events"]
    assert [event["id"] for event in one] == uuids([both, start])
    # With the other filters: an intersection.
    none = registrar.get(path, field="start_at", event_type="created", **extra).json()
    assert none["events"] == []


def test_an_unknown_field_is_a_400_naming_it(registrar, course):
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", field="start_at,colour")
    assert response.status_code == 400
    assert list(response.json()) == ["errors"]
    [error] = response.json()["errors"]
    assert error["message"].startswith("field: unknown value 'colour'; expected")
    assert "start_at" in error["message"]
    for bad in (",", "x" * 1001):
        response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", field=bad)
        assert response.status_code == 400, bad


@pytest.fixture
def batches(course, add_events, root_account):
    first = SisBatch.objects.create(root_account=root_account, filename="fall.csv")
    second = SisBatch.objects.create(root_account=root_account, filename="spring.csv")
    add_events(course, 3, when=T0, step=STEP, event_source="sis", sis_batch=first)
    add_events(course, 2, when=T0 + STEP * 10, step=STEP, event_source="sis", sis_batch=second)
    return first, second


@pytest.mark.parametrize("listing", ["course", "subtree"])
def test_the_api_filters_on_the_sis_batch(
    registrar, course, college, make_course, batches, listing
):
    first, _second = batches
    path, extra = {
        "course": (f"/api/v1/audit/course/courses/{course.pk}", {}),
        "subtree": (f"/api/v1/audit/course/accounts/{college.pk}", {"include_subaccounts": "true"}),
    }[listing]
    expected = CourseEvent.objects.filter(sis_batch=first).order_by("-created_at", "-id")
    events = api_walk(registrar, path, sis_batch_id=first.pk, per_page=2, **extra)
    assert [event["id"] for event in events] == uuids(expected)
    assert len(events) == 3
    assert {event["links"]["sis_batch"] for event in events} == {str(first.pk)}
    assert registrar.get(path, sis_batch_id=10**9, **extra).json()["events"] == []
    response = registrar.get(path, sis_batch_id="fall", **extra)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith("sis_batch_id: ")


def test_the_schema_documents_the_new_parameters(client):
    schema = client.get("/api/schema/?format=json").json()
    listing = schema["paths"]["/api/v1/audit/course/accounts/{account_id}"]["get"]
    parameters = {parameter["name"]: parameter for parameter in listing["parameters"]}
    assert sorted(parameters["field"]["schema"]["items"]["enum"]) == sorted(TRACKED_FIELDS)
    assert parameters["field"]["explode"] is False
    assert parameters["sis_batch_id"]["schema"]["type"] == "integer"


# --- the pages and exports ------------------------------------------------------------------


def test_the_history_page_filters_on_changed_fields(registrar_browser, course, changes):
    start, _name, both, _created, _published, conclude, _public = changes
    url = reverse("course_audit:course_history", args=[course.pk])
    response = registrar_browser.get(url, {"field": ["start_at", "conclude_at"], "per_page": 10})
    html = response.content.decode()
    assert response.status_code == 200
    shown = [part.split('"')[0] for part in html.split('data-event="')[1:]]
    assert shown == uuids([conclude, both, start])
    # The choice stays in the form.
    assert 'name="field" value="start_at" checked' in html
    assert 'name="field" value="name">' in html
    # The API's comma list works on the pages too.
    same = registrar_browser.get(url, {"field": "start_at,conclude_at", "per_page": 10})
    html = same.content.decode()
    assert [part.split('"')[0] for part in html.split('data-event="')[1:]] == shown
    assert 'name="field" value="conclude_at" checked' in html


def test_an_unknown_field_is_a_form_error(registrar_browser, course):
    url = reverse("course_audit:account_history", args=[course.account_id])
    response = registrar_browser.get(url, {"field": "colour"})
    assert response.status_code == 400
    assert "Changed fields: unknown value &#x27;colour&#x27;" in response.content.decode()
    export = reverse("course_audit:account_export", args=[course.account_id])
    response = registrar_browser.get(export, {"field": "colour"})
    assert response.status_code == 400
    assert response.content.decode().startswith("field: unknown value 'colour'")


def export_rows(response) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("subaccounts", [False, True])
def test_the_export_is_exactly_the_filtered_changes(
    registrar_browser, course, college, changes, monkeypatch, subaccounts
):
    from course_audit import exports

    monkeypatch.setattr(exports, "EXPORT_CHUNK", 2)
    start, _name, both, _created, _published, conclude, _public = changes
    account = college if subaccounts else course.account
    url = reverse("course_audit:account_export", args=[account.pk])
    params = {
        "field": ["conclude_at", "start_at"],
        "include_subaccounts": "1" if subaccounts else "",
    }
    rows = export_rows(registrar_browser.get(url, params))
    assert [row["id"] for row in rows] == uuids([conclude, both, start])
    assert json.loads(rows[1]["event_data"])["conclude_at"] == [None, "2025-05-01T00:00:00Z"]


def test_the_sis_batch_page_lists_its_changes(registrar_browser, course, batches):
    first, _second = batches
    url = reverse("course_audit:sis_batch_history", args=[first.pk])
    response = registrar_browser.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert f"Changes of SIS import #{first.pk}" in html
    assert "fall.csv" in html
    events = CourseEvent.objects.filter(sis_batch=first).order_by("-created_at", "-id")
    shown = [part.split('"')[0] for part in html.split('data-event="')[1:]]
    assert shown == uuids(events)
    # Each event links its batch's page; the batch's own course is shown.
    assert f'href="{url}"' in html
    assert "Biology 101" in html
    # Paging, filters and the export are the other pages'.
    page = registrar_browser.get(url, {"per_page": 10, "event_type": "published"})
    assert 'data-event="' not in page.content.decode()
    export = reverse("course_audit:sis_batch_export", args=[first.pk])
    rows = export_rows(registrar_browser.get(export))
    assert [row["id"] for row in rows] == uuids(events)
    assert {row["sis_batch_id"] for row in rows} == {str(first.pk)}


def test_events_link_their_sis_batch(registrar_browser, course, batches):
    html = registrar_browser.get(
        reverse("course_audit:course_history", args=[course.pk])
    ).content.decode()
    for batch in batches:
        link = reverse("course_audit:sis_batch_history", args=[batch.pk])
        assert f'<a href="{link}">SIS import #{batch.pk}</a>' in html


def test_the_pages_filter_on_the_sis_batch(registrar_browser, course, batches):
    _first, second = batches
    url = reverse("course_audit:course_history", args=[course.pk])
    html = registrar_browser.get(url, {"sis_batch_id": second.pk}).content.decode()
    events = CourseEvent.objects.filter(sis_batch=second).order_by("-created_at", "-id")
    assert [part.split('"')[0] for part in html.split('data-event="')[1:]] == uuids(events)
    response = registrar_browser.get(url, {"sis_batch_id": "fall"})
    assert response.status_code == 400
    assert "SIS import: " in response.content.decode()


def test_the_sis_batch_page_follows_the_access_rule(
    browser,
    registrar_browser,
    course,
    make_course,
    college,
    batches,
    admin_role,
    teacher_role,
    other_root,
    add_events,
):
    first, _second = batches
    url = reverse("course_audit:sis_batch_history", args=[first.pk])
    export = reverse("course_audit:sis_batch_export", args=[first.pk])
    # The batch also changed a course of another department.
    from course_audit.models import Account

    chemistry = Account.objects.create(name="Chemistry", parent=college)
    elsewhere = make_course(name="Chem 1", account=chemistry)
    [foreign] = add_events(elsewhere, 1, when=T0 + STEP * 5, event_source="sis", sis_batch=first)
    everything = registrar_browser.get(url).content.decode()
    assert str(foreign.uuid) in everything
    # A department's auditor sees the batch's events in their department only.
    biology = browser("biology", (course.account, admin_role))
    html = biology.get(url).content.decode()
    assert str(foreign.uuid) not in html
    assert html.count('data-event="') == 3
    assert len(export_rows(biology.get(export))) == 3
    # A member without the permission anywhere: 403; another tenant, an unknown batch: 404.
    assert browser("teacher", (course.account, teacher_role)).get(url).status_code == 403
    outsider = browser("outsider", (other_root, admin_role))
    assert outsider.get(url).status_code == 404
    assert outsider.get(export).status_code == 404
    assert (
        registrar_browser.get(reverse("course_audit:sis_batch_history", args=[10**9])).status_code
        == 404
    )


# --- the indexes (PostgreSQL) ----------------------------------------------------------------


@on_postgresql
def test_every_partition_has_the_changed_field_indexes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'course_audit_courseevent'::regclass"
        )
        partitions = [row[0] for row in cursor.fetchall()]
        assert partitions
        for partition in partitions:
            cursor.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
                [partition],
            )
            definitions = " ".join(row[0] for row in cursor.fetchall())
            assert "(event_data ? 'start_at'::text)" in definitions, partition
            assert "WHERE (sis_batch_id IS NOT NULL)" in definitions, partition


@on_postgresql
def test_the_account_listing_of_a_changed_field_reads_its_index(course, changes):
    events = CourseEvent.objects.for_accounts([course.account_id]).filter(
        changed_field_q("start_at")
    )
    page = events.order_by("-created_at", "-id")[:11]
    with connection.cursor() as cursor:
        # As a prepared statement's generic plan would see it: the key is in the SQL.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        sql, params = page.query.sql_with_params()
        assert "? 'start_at'" in sql
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        # Each partition's index of it: the one the plan names.
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            [changed_field_index_name("start_at")],
        )
        indexes = [row[0] for row in cursor.fetchall()]
    assert any(f" using {index} on " in plan.lower() for index in indexes), plan
    assert not re.search(r"^\s*(->\s*)?Sort\s+\(", plan, re.MULTILINE), plan


@pytest.mark.parametrize("fields", [["start_at"], ["start_at", "conclude_at"]])
def test_the_chart_of_changed_fields_is_bounded_too(
    registrar_browser, course, add_events, monkeypatch, fields
):
    from course_audit import views

    monkeypatch.setattr(views, "CHART_MAX_EVENTS", 2)
    days = [T0 + dt.timedelta(days=index) for index in range(5)]
    both = {"start_at": [None, "x"], "conclude_at": [None, "y"]}
    for index, when in enumerate(days):
        data = [{"start_at": [None, "x"]}, {"conclude_at": [None, "y"]}, both][index % 3]
        add_events(course, 1, when=when, event_data=data)
    url = reverse("course_audit:course_history", args=[course.pk])
    html = registrar_browser.get(url, {"field": fields}).content.decode()
    # Matching, newest first: March 7 (start_at), 6 (both), 5 (conclude_at), 4 (start_at),
    # 3 (both); the third newest decides where the chart starts, the day after it.
    third = "March 5, 2025" if len(fields) == 2 else "March 3, 2025"
    start = "March 6, 2025" if len(fields) == 2 else "March 4, 2025"
    assert "The chart covers the days of the newest 2 events" in html
    assert f"2 events from {start}" in html, third
    assert html.count('data-event="') == (5 if len(fields) == 2 else 3)
