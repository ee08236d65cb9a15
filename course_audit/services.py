"""Writes to courses. Each service runs in one transaction and records its events.

Every service takes an optional ``user``: the actor to record. Without it the active audit
context decides (the request's user in a view, ``audit_context(user=...)`` in a script).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from course_audit import recording
from course_audit.context import audit_context
from course_audit.models import Account, Course, CourseEvent

State = Course.WorkflowState
EventType = CourseEvent.EventType

EDITABLE_FIELDS = frozenset(
    {
        "name",
        "course_code",
        "sis_course_id",
        "start_at",
        "conclude_at",
        "is_public",
        "public_description",
        "account",
    }
)


class CourseStateError(ValueError):
    """A lifecycle change the course's current state does not allow."""


@contextmanager
def _acting(user: Any) -> Iterator[None]:
    if user is None:
        yield
    else:
        with audit_context(user=user):
            yield


def course_create(
    *,
    account: Account,
    name: str,
    course_code: str = "",
    sis_course_id: str | None = None,
    start_at: datetime | None = None,
    conclude_at: datetime | None = None,
    is_public: bool = False,
    public_description: str = "",
    publish: bool = False,
    user: Any = None,
) -> Course:
    """Create a course (unpublished, or published with ``publish=True``).

    Records ``created`` with every field set, and ``published`` when published.
    Raises ``ValidationError`` for bad values; nothing is written then.
    """
    course = Course(
        account=account,
        name=name,
        course_code=course_code,
        sis_course_id=sis_course_id or None,
        start_at=start_at,
        conclude_at=conclude_at,
        is_public=is_public,
        public_description=public_description,
        workflow_state=State.AVAILABLE if publish else State.UNPUBLISHED,
    )
    course.root_account_id = account.resolved_root_id
    course.full_clean()
    with transaction.atomic(), _acting(user):
        course.save()
    return course


def course_update(*, course: Course, user: Any = None, **changes: Any) -> Course:
    """Change a course's fields; records one ``updated`` event with the fields that changed.

    Raises ``ValidationError`` for bad values and ``CourseStateError`` for a deleted course.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"course_update() got unexpected fields: {', '.join(sorted(unknown))}")
    if "sis_course_id" in changes:
        changes["sis_course_id"] = changes["sis_course_id"] or None
    with transaction.atomic(), _acting(user):
        # Changes go onto the row as it is now, so a refused update leaves the caller's
        # object untouched and unrelated unsaved attributes of it are not written.
        current = Course.objects.select_for_update().get(pk=course.pk)
        if current.workflow_state == State.DELETED:
            raise CourseStateError(_("A deleted course cannot be changed; restore it first."))
        for field, value in changes.items():
            setattr(current, field, value)
        current.full_clean()
        current.save()
    for model_field in Course._meta.concrete_fields:
        setattr(course, model_field.attname, getattr(current, model_field.attname))
    return course


def _transition(
    course: Course,
    *,
    target: str,
    allowed_from: set[str],
    message: str,
    user: Any,
    idempotent: bool = True,
) -> Course:
    with transaction.atomic(), _acting(user):
        current = Course.objects.select_for_update().only("workflow_state").get(pk=course.pk)
        course.workflow_state = current.workflow_state
        if idempotent and current.workflow_state == target:
            return course
        if current.workflow_state not in allowed_from:
            raise CourseStateError(
                message % {"state": Course.WorkflowState(current.workflow_state).label.lower()}
            )
        course.workflow_state = target
        course.save(update_fields=["workflow_state", "updated_at"])
    return course


def course_publish(*, course: Course, user: Any = None) -> Course:
    """Publish an unpublished course (``published``); a no-op if it is already published."""
    return _transition(
        course,
        target=State.AVAILABLE,
        allowed_from={State.UNPUBLISHED},
        message=_("A %(state)s course cannot be published."),
        user=user,
    )


def course_unpublish(*, course: Course, user: Any = None) -> Course:
    """Unpublish a published course (``unpublished``; Canvas's ``claim``)."""
    return _transition(
        course,
        target=State.UNPUBLISHED,
        allowed_from={State.AVAILABLE},
        message=_("A %(state)s course cannot be unpublished."),
        user=user,
    )


def course_conclude(*, course: Course, user: Any = None) -> Course:
    """Conclude a course (``concluded``)."""
    return _transition(
        course,
        target=State.COMPLETED,
        allowed_from={State.UNPUBLISHED, State.AVAILABLE},
        message=_("A %(state)s course cannot be concluded."),
        user=user,
    )


def course_unconclude(*, course: Course, user: Any = None) -> Course:
    """Bring a concluded course back, published (``unconcluded``)."""
    return _transition(
        course,
        target=State.AVAILABLE,
        allowed_from={State.COMPLETED},
        message=_("Only a concluded course can be unconcluded; this one is %(state)s."),
        user=user,
    )


def course_delete(*, course: Course, user: Any = None) -> Course:
    """Soft-delete a course (``deleted``); the row and its history stay."""
    return _transition(
        course,
        target=State.DELETED,
        allowed_from={State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED},
        message=_("A %(state)s course cannot be deleted."),
        user=user,
    )


def course_restore(*, course: Course, user: Any = None) -> Course:
    """Restore a deleted course, unpublished (``restored``)."""
    return _transition(
        course,
        target=State.UNPUBLISHED,
        allowed_from={State.DELETED},
        message=_("Only a deleted course can be restored; this one is %(state)s."),
        user=user,
        idempotent=False,
    )


def _check_copyable(source: Course, destination: Course) -> None:
    if source.pk == destination.pk:
        raise ValidationError(_("A course cannot be copied into itself."))
    if source.root_account_id != destination.root_account_id:
        raise ValidationError(_("Courses can only be copied within one root account."))
    for course in (source, destination):
        if course.workflow_state == State.DELETED:
            raise CourseStateError(_("A deleted course cannot take part in a copy."))


def course_copy(
    *,
    source: Course,
    destination: Course | None = None,
    name: str | None = None,
    user: Any = None,
) -> Course:
    """Copy a course's content into ``destination``, or into a new course created for it.

    Records ``copied_from`` on the destination and ``copied_to`` on the source (and
    ``created`` for a new destination). Returns the destination.
    """
    with transaction.atomic(), _acting(user):
        if destination is None:
            destination = course_create(
                account=source.account,
                name=name or source.name,
                course_code=source.course_code,
                start_at=source.start_at,
                conclude_at=source.conclude_at,
                is_public=source.is_public,
                public_description=source.public_description,
            )
        _check_copyable(source, destination)
        using = destination._state.db or "default"
        recording.record_event(
            course=destination, event_type=EventType.COPIED_FROM, related_course=source, using=using
        )
        recording.record_event(
            course=source, event_type=EventType.COPIED_TO, related_course=destination, using=using
        )
    return destination


def course_reset(*, course: Course, user: Any = None) -> Course:
    """Reset a course's content: a fresh, empty course replaces it and it ends deleted.

    The new course takes the old one's settings and SIS id. Records ``created`` and
    ``reset_from`` on the new course and ``reset_to`` on the old one - the pair is the
    record of the old course's deletion. Returns the new course.
    """
    with transaction.atomic(), _acting(user):
        old = Course.objects.select_for_update().get(pk=course.pk)
        if old.workflow_state == State.DELETED:
            raise CourseStateError(_("A deleted course cannot be reset."))
        sis_course_id = old.sis_course_id
        old.sis_course_id = None
        old.workflow_state = State.DELETED
        recording.recorded_by_caller(old)
        old.save(update_fields=["sis_course_id", "workflow_state", "updated_at"])
        new = course_create(
            account=old.account,
            name=old.name,
            course_code=old.course_code,
            sis_course_id=sis_course_id,
            start_at=old.start_at,
            conclude_at=old.conclude_at,
            is_public=old.is_public,
            public_description=old.public_description,
        )
        using = old._state.db or "default"
        recording.record_event(
            course=new, event_type=EventType.RESET_FROM, related_course=old, using=using
        )
        recording.record_event(
            course=old, event_type=EventType.RESET_TO, related_course=new, using=using
        )
    course.refresh_from_db()
    return new
