"""Each event type is recorded with exactly the contract's ``event_data``."""

from __future__ import annotations

import datetime as dt

import pytest

from course_audit import services
from course_audit.models import Course, CourseEvent
from course_audit.services import CourseStateError
from tests.helpers import event_types, events_of, last_event

pytestmark = pytest.mark.django_db

EventType = CourseEvent.EventType


def test_created_records_every_field_set_and_its_source(department):
    course = services.course_create(
        account=department,
        name="Biology 101",
        course_code="BIO101",
        sis_course_id="BIO101-F25",
        start_at=dt.datetime(2025, 9, 1, 8, 30, tzinfo=dt.UTC),
        conclude_at=dt.datetime(2025, 12, 20, 17, 0, tzinfo=dt.UTC),
        is_public=False,
    )
    [event] = events_of(course)
    assert event.event_type == EventType.CREATED
    assert event.event_source == CourseEvent.EventSource.MANUAL
    assert event.event_data == {
        "name": [None, "Biology 101"],
        "course_code": [None, "BIO101"],
        "sis_course_id": [None, "BIO101-F25"],
        "account_id": [None, department.pk],
        "start_at": [None, "2025-09-01T08:30:00Z"],
        "conclude_at": [None, "2025-12-20T17:00:00Z"],
        "is_public": [None, False],
        "created_source": "manual",
    }
    assert event.account_id == department.pk


def test_created_published_records_created_then_published(department):
    course = services.course_create(account=department, name="Chem 1", publish=True)
    assert event_types(course) == [EventType.CREATED, EventType.PUBLISHED]
    assert events_of(course)[1].event_data == {}


def test_updated_records_old_and_new_of_each_changed_field(course):
    services.course_update(course=course, name="Biology 102", is_public=True)
    event = last_event(course)
    assert event.event_type == EventType.UPDATED
    assert event.event_data == {"name": ["Biology 101", "Biology 102"], "is_public": [False, True]}


def test_moving_a_course_records_account_and_the_new_account_snapshot(course, college):
    old_account = course.account_id
    services.course_update(course=course, account=college)
    event = last_event(course)
    assert event.event_data == {"account_id": [old_account, college.pk]}
    assert event.account_id == college.pk


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (["publish"], [EventType.PUBLISHED]),
        (["publish", "unpublish"], [EventType.PUBLISHED, EventType.UNPUBLISHED]),
        (["conclude"], [EventType.CONCLUDED]),
        (["conclude", "unconclude"], [EventType.CONCLUDED, EventType.UNCONCLUDED]),
        (["delete"], [EventType.DELETED]),
        (["delete", "restore"], [EventType.DELETED, EventType.RESTORED]),
    ],
)
def test_lifecycle_events_have_empty_data(course, steps, expected):
    for step in steps:
        getattr(services, f"course_{step}")(course=course)
    events = events_of(course)[1:]
    assert [event.event_type for event in events] == expected
    assert all(event.event_data == {} for event in events)


@pytest.mark.parametrize(
    ("step", "final_state"),
    [
        ("publish", Course.WorkflowState.AVAILABLE),
        ("unpublish", Course.WorkflowState.UNPUBLISHED),
        ("conclude", Course.WorkflowState.COMPLETED),
        ("delete", Course.WorkflowState.DELETED),
    ],
)
def test_lifecycle_services_change_the_row(course, step, final_state):
    if step == "unpublish":
        services.course_publish(course=course)
    getattr(services, f"course_{step}")(course=course)
    course.refresh_from_db()
    assert course.workflow_state == final_state


def test_unconclude_leaves_the_course_published_and_restore_unpublished(course):
    services.course_conclude(course=course)
    services.course_unconclude(course=course)
    assert Course.objects.get(pk=course.pk).workflow_state == Course.WorkflowState.AVAILABLE
    services.course_delete(course=course)
    services.course_restore(course=course)
    assert Course.objects.get(pk=course.pk).workflow_state == Course.WorkflowState.UNPUBLISHED


@pytest.mark.parametrize(
    ("setup", "step", "message"),
    [
        ("delete", "publish", "A deleted course cannot be published."),
        ("delete", "conclude", "A deleted course cannot be concluded."),
        ("delete", "unpublish", "A deleted course cannot be unpublished."),
        ("conclude", "publish", "A concluded course cannot be published."),
        (
            None,
            "unconclude",
            "Only a concluded course can be unconcluded; this one is unpublished.",
        ),
        (None, "restore", "Only a deleted course can be restored; this one is unpublished."),
    ],
)
def test_illegal_transitions_raise_and_record_nothing(course, setup, step, message):
    if setup:
        getattr(services, f"course_{setup}")(course=course)
    before = event_types(course)
    state = Course.objects.get(pk=course.pk).workflow_state
    with pytest.raises(CourseStateError) as error:
        getattr(services, f"course_{step}")(course=course)
    assert str(error.value) == message
    assert event_types(course) == before
    assert Course.objects.get(pk=course.pk).workflow_state == state


def test_repeating_a_transition_records_nothing(course):
    services.course_publish(course=course)
    services.course_publish(course=course)
    assert event_types(course) == [EventType.CREATED, EventType.PUBLISHED]


def test_updating_a_deleted_course_is_refused(course):
    services.course_delete(course=course)
    with pytest.raises(CourseStateError):
        services.course_update(course=course, name="Zombie")
    assert Course.objects.get(pk=course.pk).name == "Biology 101"


def test_copy_into_a_new_course_records_the_pair(course):
    copy = services.course_copy(source=course, name="Biology 101 (Spring)")
    assert copy.pk != course.pk
    assert event_types(copy) == [EventType.CREATED, EventType.COPIED_FROM]
    copied_from = events_of(copy)[1]
    assert copied_from.event_data == {}
    assert copied_from.related_course_id == course.pk
    copied_to = last_event(course)
    assert copied_to.event_type == EventType.COPIED_TO
    assert copied_to.event_data == {}
    assert copied_to.related_course_id == copy.pk
    assert copy.name == "Biology 101 (Spring)"
    assert copy.course_code == course.course_code


def test_copy_into_an_existing_course(course, make_course):
    destination = make_course(name="Sandbox")
    services.course_copy(source=course, destination=destination)
    assert event_types(destination) == [EventType.CREATED, EventType.COPIED_FROM]
    assert event_types(course) == [EventType.CREATED, EventType.COPIED_TO]


def test_copy_into_itself_is_refused(course):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.course_copy(source=course, destination=course)
    assert event_types(course) == [EventType.CREATED]


def test_reset_replaces_the_course_and_records_the_pair(course):
    new = services.course_reset(course=course)
    course.refresh_from_db()
    assert course.workflow_state == Course.WorkflowState.DELETED
    assert course.sis_course_id is None
    assert new.sis_course_id == "BIO101-F25"
    assert new.name == course.name
    # The pair is the whole record of the old course's deletion.
    assert event_types(course) == [EventType.CREATED, EventType.RESET_TO]
    assert last_event(course).related_course_id == new.pk
    assert last_event(course).event_data == {}
    assert event_types(new) == [EventType.CREATED, EventType.RESET_FROM]
    assert last_event(new).related_course_id == course.pk
    assert events_of(new)[0].event_data["sis_course_id"] == [None, "BIO101-F25"]


def test_reset_of_a_deleted_course_is_refused(course):
    services.course_delete(course=course)
    with pytest.raises(CourseStateError):
        services.course_reset(course=course)
    assert Course.objects.count() == 1


def test_hard_delete_is_refused(course):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        course.delete()
    with pytest.raises(ProtectedError):
        Course.objects.filter(pk=course.pk).delete()
    assert Course.objects.filter(pk=course.pk).exists()
