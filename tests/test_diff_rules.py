"""Canvas's diff rules, through real saves."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings

from course_audit import services
from course_audit.diff import build_diff, lifecycle_events
from course_audit.models import Course, CourseEvent
from tests.helpers import event_types, events_of, last_event

pytestmark = pytest.mark.django_db


def test_blank_to_blank_is_no_change(course):
    # sis id None -> "" (stored as None by the service) and description "" -> "" are blank.
    course.sis_course_id = None
    course.save()
    services.course_update(course=course, public_description="", sis_course_id="")
    assert event_types(course) == ["created", "updated"]
    assert last_event(course).event_data == {"sis_course_id": ["BIO101-F25", None]}
    assert build_diff({"name": None}, {"name": ""}) == {}
    assert build_diff({"name": ""}, {"name": None}) == {}


def test_created_leaves_out_blank_fields(department):
    course = services.course_create(account=department, name="Plain")
    assert events_of(course)[0].event_data == {
        "name": [None, "Plain"],
        "account_id": [None, department.pk],
        "is_public": [None, False],
        "created_source": "manual",
    }


def test_long_strings_are_cut_to_1000_characters(course):
    text = "x" * 1500
    services.course_update(course=course, public_description=text)
    data = last_event(course).event_data
    assert data["public_description"] == ["", "x" * 1000]
    assert Course.objects.get(pk=course.pk).public_description == text


@override_settings(COURSE_AUDIT_MAX_DIFF_STRING_LENGTH=10)
def test_the_cut_length_is_a_setting(course):
    services.course_update(course=course, public_description="abcdefghijklmnop")
    assert last_event(course).event_data == {"public_description": ["", "abcdefghij"]}


def test_dates_that_print_the_same_are_left_out(course):
    start = dt.datetime(2025, 9, 1, 8, 30, 0, tzinfo=dt.UTC)
    services.course_update(course=course, start_at=start)
    services.course_update(course=course, start_at=start.replace(microsecond=123456))
    assert event_types(course) == ["created", "updated"]
    assert last_event(course).event_data == {"start_at": [None, "2025-09-01T08:30:00Z"]}


def test_dates_are_written_as_iso_8601_in_utc(course):
    eastern = dt.timezone(dt.timedelta(hours=-5))
    services.course_update(
        course=course, conclude_at=dt.datetime(2025, 12, 20, 12, 0, tzinfo=eastern)
    )
    assert last_event(course).event_data == {"conclude_at": [None, "2025-12-20T17:00:00Z"]}


def test_a_save_that_changes_nothing_records_nothing(course):
    course.save()
    Course.objects.get(pk=course.pk).save()
    services.course_update(course=course, name="Biology 101")
    Course.objects.filter(pk=course.pk).update(name="Biology 101")
    assert event_types(course) == ["created"]


def test_only_tracked_fields_make_updated_events(course):
    Course.objects.filter(pk=course.pk).update(updated_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert event_types(course) == ["created"]


def test_created_source_follows_the_context(department):
    from course_audit.context import audit_context

    with audit_context(source=CourseEvent.EventSource.API):
        course = services.course_create(account=department, name="Via API")
    assert events_of(course)[0].event_data["created_source"] == "api"
    assert events_of(course)[0].event_source == "api"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("unpublished", "available", ["published"]),
        ("available", "unpublished", ["unpublished"]),
        ("available", "completed", ["concluded"]),
        ("unpublished", "completed", ["concluded"]),
        ("completed", "available", ["unconcluded"]),
        ("completed", "unpublished", ["unconcluded", "unpublished"]),
        ("available", "deleted", ["deleted"]),
        ("deleted", "unpublished", ["restored"]),
        ("deleted", "available", ["restored", "published"]),
        ("deleted", "completed", ["restored", "concluded"]),
        ("available", "available", []),
    ],
)
def test_state_changes_map_to_lifecycle_events(old, new, expected):
    assert lifecycle_events(old, new) == expected
