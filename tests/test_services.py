"""``course_audit.services``: the writes, driven by the transitions table of ``diff``.

What each event records is tested in ``test_event_types.py``; these tests are about the
services themselves: what they return, the order of an update's steps, their refusals.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from course_audit import diff, services
from course_audit.models import Course, CourseEvent
from tests.helpers import event_types, events_of

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", list(diff.TRANSITIONS))
def test_each_named_service_is_its_transition(action, make_course):
    transition = diff.TRANSITIONS[action]
    start = sorted(transition.allowed_from)[0]
    course = make_course()
    Course.objects.filter(pk=course.pk).update(workflow_state=start)
    course.refresh_from_db()
    service = getattr(services, transition.service)
    assert service(course=course).workflow_state == transition.target
    assert Course.objects.get(pk=course.pk).workflow_state == transition.target


@pytest.mark.parametrize("action", list(diff.TRANSITIONS))
def test_a_transition_from_a_state_it_does_not_allow_is_refused(action, make_course):
    transition = diff.TRANSITIONS[action]
    refused = {"unpublished", "available", "completed", "deleted"} - transition.allowed_from
    refused -= {transition.target} if transition.idempotent else set()
    for state in sorted(refused):
        course = make_course()
        Course.objects.filter(pk=course.pk).update(workflow_state=state)
        before = CourseEvent.objects.count()
        with pytest.raises(services.CourseTransitionError):
            services.course_transition(course=course, action=action)
        assert Course.objects.get(pk=course.pk).workflow_state == state
        assert CourseEvent.objects.count() == before


def test_an_idempotent_transition_again_records_nothing(course):
    services.course_publish(course=course)
    count = CourseEvent.objects.count()
    assert services.course_publish(course=course).workflow_state == "available"
    assert CourseEvent.objects.count() == count


def test_an_unknown_action_is_a_key_error(course):
    with pytest.raises(KeyError):
        services.course_transition(course=course, action="publish_everything")


def test_apply_update_restores_before_changing_and_acts_after(course):
    services.course_delete(course=course)
    services.course_apply_update(course=course, changes={"name": "Back"}, action="undelete")
    assert event_types(course)[-2:] == ["restored", "updated"]
    services.course_apply_update(course=course, changes={"name": "Live"}, action="offer")
    assert event_types(course)[-2:] == ["updated", "published"]
    course.refresh_from_db()
    assert (course.name, course.workflow_state) == ("Live", "available")


def test_apply_update_is_one_transaction(course):
    """A refused action after a valid change leaves neither the change nor its event."""
    count = CourseEvent.objects.count()
    with pytest.raises(services.CourseTransitionError):
        services.course_apply_update(course=course, changes={"name": "Never"}, action="undelete")
    assert Course.objects.get(pk=course.pk).name == "Biology 101"
    assert CourseEvent.objects.count() == count


def test_a_change_to_a_deleted_course_is_a_state_error_not_a_transition_error(course):
    services.course_delete(course=course)
    with pytest.raises(services.CourseStateError) as raised:
        services.course_apply_update(course=course, changes={"name": "Never"})
    assert not isinstance(raised.value, services.CourseTransitionError)


def test_apply_update_refuses_bad_values(course):
    with pytest.raises(ValidationError):
        services.course_apply_update(course=course, changes={"name": ""})
    assert Course.objects.get(pk=course.pk).name == "Biology 101"


def test_copy_content_returns_the_events_it_recorded(course):
    copy = services.course_copy_content(source=course, name="Biology 101 (copy)")
    destination = copy.destination
    assert destination.name == "Biology 101 (copy)"
    assert destination.sis_course_id is None
    for field in diff.COPIED_FIELDS:
        if field != "name":
            assert getattr(destination, field) == getattr(course, field)
    saved_from = CourseEvent.objects.get(pk=copy.copied_from.pk)
    saved_to = CourseEvent.objects.get(pk=copy.copied_to.pk)
    assert (saved_from.course_id, saved_from.event_type, saved_from.related_course_id) == (
        destination.pk,
        "copied_from",
        course.pk,
    )
    assert (saved_to.course_id, saved_to.event_type, saved_to.related_course_id) == (
        course.pk,
        "copied_to",
        destination.pk,
    )
    assert events_of(destination)[-1].pk == copy.copied_from.pk


def test_reset_hands_the_reset_fields_to_the_new_course(course):
    new = services.course_reset(course=course)
    course.refresh_from_db()
    for field in diff.RESET_FIELDS:
        expected = "BIO101-F25" if field == "sis_course_id" else getattr(course, field)
        assert getattr(new, field) == expected
    assert course.sis_course_id is None
    assert course.workflow_state == "deleted"
