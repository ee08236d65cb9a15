"""course_audit.presentation: how an event is shown on the pages and in the admin (rows in
the tracked-field order, labelled, folded at FOLD_AT, accounts by name, blank values,
created_source), and the one template that renders it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from course_audit import services
from course_audit.diff import FIELD_ORDER, TRACKED_FIELDS, in_field_order
from course_audit.models import Account, CourseEvent, SisBatch
from course_audit.presentation import FOLD_AT, Value, diff_rows, diff_value, present_all
from tests.helpers import events_of, last_event

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


# --- order and labels (no database) ----------------------------------------------------------


def test_the_order_is_the_tracked_fields_then_created_source():
    assert (*TRACKED_FIELDS, "created_source") == FIELD_ORDER


def test_data_is_put_in_the_tracked_field_order_unknown_keys_last_by_name():
    data = {
        "zeta": 1,
        "created_source": "api",
        "public_description": ["", "x"],
        "alpha": 2,
        "name": ["a", "b"],
        "account_id": [1, 2],
    }
    assert list(in_field_order(data)) == [
        "name",
        "account_id",
        "public_description",
        "created_source",
        "alpha",
        "zeta",
    ]
    assert in_field_order(data) == data  # reordered, nothing changed


def test_rows_are_labelled_with_the_fields_verbose_names():
    data = {name: ["", "x"] for name in reversed(TRACKED_FIELDS)}
    data["created_source"] = "sis"
    rows = diff_rows(data, {})
    assert [row.field for row in rows] == [*TRACKED_FIELDS, "created_source"]
    assert [row.label for row in rows] == [
        "name",
        "course code",
        "SIS course id",
        "account",
        "starts at",
        "ends at",
        "public",
        "public description",
        "created from",
    ]


def test_an_unknown_key_is_labelled_by_its_name():
    (row,) = diff_rows({"colour": ["red", "blue"]}, {})
    assert row.label == "colour"
    assert row.sides == (Value(text="red"), Value(text="blue"))


def test_labels_are_translated():
    with translation.override("es"):
        labels = [row.label for row in diff_rows({"name": ["a", "b"], "created_source": "api"}, {})]
    assert labels == ["nombre", "origen de la creación"]


# --- values (no database) ----------------------------------------------------------------------


def test_blank_values_are_empty():
    assert diff_value("name", None) == Value(empty=True)
    assert diff_value("name", "") == Value(empty=True)
    assert diff_value("name", 0) == Value(text="0")  # zero is a value


def test_booleans_read_yes_and_no():
    assert diff_value("is_public", True) == Value(text="Yes")
    assert diff_value("is_public", False) == Value(text="No")


def test_dates_of_date_fields_are_parsed():
    value = diff_value("start_at", "2025-09-01T08:00:00Z")
    assert value.date == dt.datetime(2025, 9, 1, 8, 0, tzinfo=dt.UTC)
    assert value.text == "2025-09-01T08:00:00Z"
    # a date-looking text in a field that holds no date stays text
    assert diff_value("name", "2025-09-01T08:00:00Z") == Value(text="2025-09-01T08:00:00Z")
    # an unreadable date is shown as it was recorded
    assert diff_value("start_at", "soon") == Value(text="soon")


def test_values_fold_beyond_the_width():
    assert FOLD_AT == 120
    assert diff_value("name", "x" * FOLD_AT) == Value(text="x" * FOLD_AT)
    longer = "x" * FOLD_AT + "yz"
    assert diff_value("name", longer) == Value(text=longer, folded="x" * FOLD_AT)


def test_other_json_values_are_printed_as_json():
    assert diff_value("tags", ["a", 1]) == Value(text='["a", 1]')
    assert diff_value("count", 7) == Value(text="7")


def test_a_change_has_two_sides_and_a_plain_value_one():
    change, plain = diff_rows({"name": [None, "Biology"], "created_source": "manual"}, {})
    assert change.sides == (Value(empty=True), Value(text="Biology"))
    assert plain.sides == (Value(text="Manual"),)  # the source's label, not its value


def test_an_unknown_created_source_is_shown_as_recorded():
    (row,) = diff_rows({"created_source": "carrier pigeon"}, {})
    assert row.sides == (Value(text="carrier pigeon"),)


def test_accounts_are_shown_by_name_or_by_id_when_unknown():
    (row,) = diff_rows({"account_id": [3, 4]}, {3: "Biology"})
    assert row.label == "account"
    assert row.sides == (Value(text="Biology"), Value(text="#4"))


# --- events and queries ------------------------------------------------------------------------


@pytest.mark.django_db
def test_present_all_names_accounts_in_one_query(course, college, department, add_events):
    for index in range(5):
        other = Account.objects.create(name=f"Chemistry {index}", parent=college)
        add_events(course, 1, when=T0, event_data={"account_id": [department.pk, other.pk]})
    events = list(CourseEvent.objects.filter(course=course).order_by("-created_at", "-id"))
    assert len(events) == 6  # and the course's own "created"

    with CaptureQueriesContext(connection) as captured:
        shown = present_all(events)

    assert len(captured) == 1
    moves = [item["diff"][0].sides for item in shown if item["event"].event_type == "updated"]
    assert {before.text for before, _ in moves} == {"Biology"}
    assert sorted(after.text for _, after in moves) == [f"Chemistry {i}" for i in range(5)]


@pytest.mark.django_db
def test_present_all_reads_nothing_without_accounts_to_name(course, add_events):
    add_events(course, 3, when=T0, event_data={"name": ["a", "b"]}, user_name="Someone")
    events = list(CourseEvent.objects.filter(course=course, event_type="updated"))
    with CaptureQueriesContext(connection) as captured:
        shown = present_all(events)
    assert len(captured) == 0
    assert [item["who"] for item in shown] == ["Someone"] * 3


@pytest.mark.django_db
def test_a_created_event_shows_its_fields_then_created_from(make_course):
    course = make_course(name="Biology 201", course_code="BIO201", is_public=True)
    (shown,) = present_all(events_of(course))
    assert [(row.label, [side.text for side in row.sides]) for row in shown["diff"]] == [
        ("name", ["", "Biology 201"]),
        ("course code", ["", "BIO201"]),
        ("account", ["", "Biology"]),
        ("public", ["", "Yes"]),
        ("created from", ["Manual"]),
    ]
    assert shown["diff"][0].sides[0].empty


@pytest.mark.django_db
def test_only_created_and_updated_events_show_a_diff(course, add_events):
    add_events(course, 1, when=T0, event_type="published", event_data={"name": ["a", "b"]})
    published = CourseEvent.objects.get(course=course, event_type="published")
    assert present_all([published])[0]["diff"] == []


@pytest.mark.django_db
def test_who_did_it(course, add_events, make_user, root_account):
    batch = SisBatch.objects.create(root_account=root_account)
    someone = make_user("someone")
    add_events(course, 1, when=T0, user=someone, user_name="Some One")
    add_events(course, 1, when=T0 + dt.timedelta(seconds=1), user_name="", sis_batch=batch)
    add_events(course, 1, when=T0 + dt.timedelta(seconds=2), user_name="")
    shown = present_all(
        list(CourseEvent.objects.filter(created_at__year=2025).order_by("created_at", "id"))
    )
    assert [item["who"] for item in shown] == ["Some One", f"SIS import #{batch.pk}", "system"]


# --- the template ------------------------------------------------------------------------------


def rendered(data, names=None) -> str:
    return render_to_string("course_audit/_diff.html", {"diff": diff_rows(data, names or {})})


def test_the_template_renders_a_row_per_field_escaped():
    html = rendered(
        {
            "public_description": ["x" * 200, ""],
            "name": ["<script>", "Biology 101"],
            "created_source": "api",
        }
    )
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</th>(.*?)</tr>", html)
    assert [label for label, _ in rows] == ["Name", "Public description", "Created from"]
    name, description, source = (cells for _, cells in rows)
    assert name == (
        '<td data-label="Before">&lt;script&gt;</td><td data-label="After">Biology 101</td>'
    )
    assert description.startswith(
        '<td data-label="Before"><details class="fold"><summary>' + "x" * FOLD_AT + "…</summary>"
    )
    assert description.endswith(
        '<td data-label="After"><span class="null" title="empty">—</span></td>'
    )
    assert source == '<td colspan="2">API</td>'
    assert "<caption" in html and '<th scope="col">Field</th>' in html


def test_the_template_shows_dates_as_times():
    html = rendered({"start_at": [None, "2025-09-01T08:00:00Z"]})
    assert '<time datetime="2025-09-01T08:00:00+00:00"' in html
    assert "Sept. 1, 2025, 8 a.m." in html


@pytest.mark.django_db
def test_the_admin_and_the_history_page_show_the_same_table(
    client, registrar_browser, course, make_user
):
    services.course_update(course=course, public_description="y" * 300, is_public=True)
    event = last_event(course)
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    admin_page = client.get(
        reverse("admin:course_audit_courseevent_change", args=[event.pk])
    ).content.decode()
    history = registrar_browser.get(
        reverse("course_audit_course_history", args=[course.pk])
    ).content.decode()
    expected = rendered(event.event_data)
    table = re.search(r'<table class="diff">.*?</table>', expected, re.S).group(0)
    assert table in admin_page
    assert table in history
