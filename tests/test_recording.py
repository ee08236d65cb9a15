"""``course_audit.recording``: every ORM path that writes a course records its events, the
bulk ones in bulk."""

from __future__ import annotations

import pytest
from django.db import NotSupportedError, connection
from django.db.models import F, Value
from django.db.models.functions import Concat

from course_audit.models import Course, CourseEvent
from tests.helpers import event_types, last_event

pytestmark = pytest.mark.django_db


def test_save_of_a_new_instance_records_created(department):
    course = Course(account=department, name="Saved")
    course.save()
    assert event_types(course) == ["created"]
    assert course.root_account_id == department.root_account_id


def test_objects_create_records_created(department):
    course = Course.objects.create(account=department, name="Made", workflow_state="completed")
    assert event_types(course) == ["created", "concluded"]


def test_save_of_a_loaded_instance_records_updated(course):
    loaded = Course.objects.get(pk=course.pk)
    loaded.name = "Renamed"
    loaded.workflow_state = Course.WorkflowState.AVAILABLE
    loaded.save()
    assert event_types(course) == ["created", "updated", "published"]
    assert last_event(course).event_type == "published"


def test_save_with_update_fields_records_only_what_was_written(course):
    course.name = "Written"
    course.course_code = "NOT-WRITTEN"
    course.save(update_fields=["name"])
    assert [
        e.event_data for e in CourseEvent.objects.filter(course=course, event_type="updated")
    ] == [{"name": ["Biology 101", "Written"]}]
    assert Course.objects.get(pk=course.pk).course_code == "BIO101"


def test_save_diffs_against_the_database_not_a_stale_instance(course):
    stale = Course.objects.get(pk=course.pk)
    Course.objects.filter(pk=course.pk).update(name="Changed elsewhere")
    stale.name = "Changed here"
    stale.save()
    assert last_event(course).event_data == {"name": ["Changed elsewhere", "Changed here"]}


def test_save_with_an_expression_records_the_resulting_value(course):
    course.name = Concat(F("name"), Value(" (old)"))
    course.save()
    assert last_event(course).event_data == {"name": ["Biology 101", "Biology 101 (old)"]}


def test_queryset_update_records_one_event_per_changed_row(make_course):
    courses = [make_course(name=f"C{i}") for i in range(5)]
    Course.objects.filter(pk=courses[0].pk).update(is_public=True)
    count = Course.objects.filter(pk__in=[c.pk for c in courses]).update(is_public=True)
    assert count == 5
    updated = CourseEvent.objects.filter(event_type="updated")
    # The first course was already public: the second update changed only four rows.
    assert updated.count() == 5
    assert {tuple(e.event_data["is_public"]) for e in updated} == {(False, True)}


def test_queryset_update_with_f_expression(course):
    Course.objects.filter(pk=course.pk).update(
        name=Concat(F("course_code"), Value(" - "), F("name"))
    )
    assert last_event(course).event_data == {"name": ["Biology 101", "BIO101 - Biology 101"]}


def test_queryset_update_of_state_records_lifecycle(make_course):
    courses = [make_course() for _ in range(3)]
    Course.objects.filter(pk__in=[c.pk for c in courses]).update(workflow_state="available")
    for course in courses:
        assert event_types(course) == ["created", "published"]


def test_queryset_update_of_account_keeps_root_and_snapshot(course, college):
    Course.objects.filter(pk=course.pk).update(account=college)
    course.refresh_from_db()
    assert course.root_account_id == college.root_account_id
    assert last_event(course).account_id == college.pk


def test_queryset_update_matching_nothing_records_nothing(course):
    assert Course.objects.filter(name="nope").update(name="x") == 0
    assert CourseEvent.objects.count() == 1


def test_bulk_update_records_each_changed_row_once(make_course, django_assert_max_num_queries):
    courses = [make_course(name=f"C{i}") for i in range(50)]
    for index, course in enumerate(courses):
        course.name = f"Renamed {index}" if index % 2 else course.name
        course.is_public = True
    with django_assert_max_num_queries(8):
        Course.objects.bulk_update(courses, ["name", "is_public"])
    updated = CourseEvent.objects.filter(event_type="updated")
    assert updated.count() == 50
    assert CourseEvent.objects.get(course=courses[1], event_type="updated").event_data == {
        "name": ["C1", "Renamed 1"],
        "is_public": [False, True],
    }
    assert CourseEvent.objects.get(course=courses[0], event_type="updated").event_data == {
        "is_public": [False, True]
    }


def test_bulk_create_records_created_events_in_bulk(department, django_assert_max_num_queries):
    courses = [Course(account=department, name=f"Bulk {i}") for i in range(300)]
    courses.append(Course(account=department, name="Published", workflow_state="available"))
    # A handful of multi-row INSERTs, never one per row (SQLite batches by its
    # parameter limit, so it needs a few more than PostgreSQL).
    with django_assert_max_num_queries(6 if connection.vendor == "postgresql" else 20):
        created = Course.objects.bulk_create(courses)
    assert all(course.pk for course in created)
    assert CourseEvent.objects.filter(event_type="created").count() == 301
    assert CourseEvent.objects.filter(event_type="published").count() == 1
    event = CourseEvent.objects.get(course=created[0])
    assert event.event_data == {
        "name": [None, "Bulk 0"],
        "account_id": [None, department.pk],
        "is_public": [None, False],
        "created_source": "manual",
    }
    assert Course.objects.filter(root_account_id=department.root_account_id).count() == 301


@pytest.mark.parametrize("option", ["ignore_conflicts", "update_conflicts"])
def test_bulk_create_refuses_conflict_handling(department, option):
    with pytest.raises(NotSupportedError):
        Course.objects.bulk_create([Course(account=department, name="x")], **{option: True})
    assert not Course.objects.exists()


def test_update_or_create_and_get_or_create_record(department):
    course, _ = Course.objects.get_or_create(account=department, name="Goc")
    Course.objects.update_or_create(pk=course.pk, defaults={"course_code": "G1"})
    assert event_types(course) == ["created", "updated"]
    assert last_event(course).event_data == {"course_code": ["", "G1"]}


def test_bulk_update_can_move_courses_between_accounts(make_course, college):
    courses = [make_course(name=f"M{i}") for i in range(3)]
    old_account = courses[0].account_id
    for course in courses:
        course.account = college
    Course.objects.bulk_update(courses, ["account"])
    for course in courses:
        course.refresh_from_db()
        assert course.account_id == college.pk
        assert course.root_account_id == college.root_account_id
        event = last_event(course)
        assert event.event_data == {"account_id": [old_account, college.pk]}
        assert event.account_id == college.pk


def test_a_big_batch_without_psycopg_3_is_recorded_by_inserts(department, monkeypatch):
    """psycopg2 cannot COPY Python rows: the batch goes in as multi-row INSERTs instead."""
    from django.db.backends.postgresql import psycopg_any

    from course_audit import recording

    def no_copy(*args, **kwargs):
        raise AssertionError("COPY without psycopg 3")

    monkeypatch.setattr(psycopg_any, "is_psycopg3", False)
    monkeypatch.setattr(recording, "_copy_events", no_copy)
    count = recording.COPY_MIN_ROWS
    Course.objects.bulk_create([Course(account=department, name=f"B{i}") for i in range(count)])
    assert CourseEvent.objects.filter(event_type="created").count() == count
