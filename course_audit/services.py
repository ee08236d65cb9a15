"""Writes to courses (each service runs in one transaction and records its events), to
legal holds and to background export jobs.

Every service takes an optional ``user``: the actor to record. Without it the active audit
context decides (the request's user in a view, ``audit_context(user=...)`` in a script).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from course_audit import recording, tasks
from course_audit.choices import CourseState as State
from course_audit.choices import EventType
from course_audit.context import audit_context
from course_audit.diff import COPIED_FIELDS, EDITABLE_FIELDS, RESET_FIELDS, TRANSITIONS
from course_audit.models import Account, Course, CourseEvent, ExportJob, LegalHold
from course_audit.types import User


class CourseStateError(ValueError):
    """A change the course's current state does not allow."""


class CourseTransitionError(CourseStateError):
    """A lifecycle action (``diff.TRANSITIONS``) the course's current state does not allow."""


@contextmanager
def _acting(user: User | None) -> Iterator[None]:
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
    user: User | None = None,
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


def course_update(*, course: Course, user: User | None = None, **changes: Any) -> Course:
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


# Why each transition is refused, by action ("%(state)s" is the course's state).
_REFUSALS = {
    "offer": gettext_noop("A %(state)s course cannot be published."),
    "claim": gettext_noop("A %(state)s course cannot be unpublished."),
    "conclude": gettext_noop("A %(state)s course cannot be concluded."),
    "unconclude": gettext_noop(
        "Only a concluded course can be unconcluded; this one is %(state)s."
    ),
    "delete": gettext_noop("A %(state)s course cannot be deleted."),
    "undelete": gettext_noop("Only a deleted course can be restored; this one is %(state)s."),
}


def course_transition(*, course: Course, action: str, user: User | None = None) -> Course:
    """Perform a lifecycle ``action`` of ``diff.TRANSITIONS`` (Canvas's ``offer``,
    ``claim``, ``conclude``, ``unconclude``, ``delete``, ``undelete``) on ``course``.

    Raises ``CourseStateError`` when the course's state does not allow it, ``KeyError``
    for an unknown action.
    """
    transition = TRANSITIONS[action]
    with transaction.atomic(), _acting(user):
        current = Course.objects.select_for_update().only("workflow_state").get(pk=course.pk)
        course.workflow_state = current.workflow_state
        if transition.idempotent and current.workflow_state == transition.target:
            return course
        if current.workflow_state not in transition.allowed_from:
            state = Course.WorkflowState(current.workflow_state).label.lower()
            raise CourseTransitionError(_(_REFUSALS[action]) % {"state": state})
        course.workflow_state = transition.target
        course.save(update_fields=["workflow_state", "updated_at"])
    return course


def course_publish(*, course: Course, user: User | None = None) -> Course:
    """Publish an unpublished course (``published``); a no-op if it is already published."""
    return course_transition(course=course, action="offer", user=user)


def course_unpublish(*, course: Course, user: User | None = None) -> Course:
    """Unpublish a published course (``unpublished``; Canvas's ``claim``)."""
    return course_transition(course=course, action="claim", user=user)


def course_conclude(*, course: Course, user: User | None = None) -> Course:
    """Conclude a course (``concluded``)."""
    return course_transition(course=course, action="conclude", user=user)


def course_unconclude(*, course: Course, user: User | None = None) -> Course:
    """Bring a concluded course back, published (``unconcluded``)."""
    return course_transition(course=course, action="unconclude", user=user)


def course_delete(*, course: Course, user: User | None = None) -> Course:
    """Soft-delete a course (``deleted``); the row and its history stay."""
    return course_transition(course=course, action="delete", user=user)


def course_restore(*, course: Course, user: User | None = None) -> Course:
    """Restore a deleted course, unpublished (``restored``)."""
    return course_transition(course=course, action="undelete", user=user)


def course_apply_update(
    *, course: Course, changes: dict[str, Any], action: str | None = None, user: User | None = None
) -> Course:
    """Canvas's course update: field ``changes`` and a lifecycle ``action``, in one
    transaction. ``undelete`` comes before the field changes (a deleted course cannot
    change), every other action after them.

    Raises ``ValidationError`` for bad values and ``CourseStateError`` for a refused
    action or a change to a deleted course; nothing is written then.
    """
    with transaction.atomic(), _acting(user):
        if action == "undelete":
            course_transition(course=course, action=action)
        if changes:
            course_update(course=course, **changes)
        if action is not None and action != "undelete":
            course_transition(course=course, action=action)
    return course


def _check_copyable(source: Course, destination: Course) -> None:
    if source.pk == destination.pk:
        raise ValidationError(_("A course cannot be copied into itself."))
    if source.root_account_id != destination.root_account_id:
        raise ValidationError(_("Courses can only be copied within one root account."))
    for course in (source, destination):
        if course.workflow_state == State.DELETED:
            raise CourseStateError(_("A deleted course cannot take part in a copy."))


@dataclasses.dataclass(frozen=True)
class CourseCopy:
    """What a copy recorded: the destination and the pair of events."""

    destination: Course
    copied_from: CourseEvent
    copied_to: CourseEvent


def course_copy_content(
    *,
    source: Course,
    destination: Course | None = None,
    name: str | None = None,
    user: User | None = None,
) -> CourseCopy:
    """Copy a course's content into ``destination``, or into a new course created for it
    (with the source's settings, ``diff.COPIED_FIELDS``, and ``name`` if given).

    Records ``copied_from`` on the destination and ``copied_to`` on the source (and
    ``created`` for a new destination); returns them with the destination.
    """
    with transaction.atomic(), _acting(user):
        if destination is None:
            settings = {field: getattr(source, field) for field in COPIED_FIELDS}
            settings["name"] = name or source.name
            destination = course_create(**settings)
        _check_copyable(source, destination)
        using = destination._state.db or "default"
        copied_from = recording.record_event(
            course=destination, event_type=EventType.COPIED_FROM, related_course=source, using=using
        )
        copied_to = recording.record_event(
            course=source, event_type=EventType.COPIED_TO, related_course=destination, using=using
        )
    return CourseCopy(destination=destination, copied_from=copied_from, copied_to=copied_to)


def course_copy(
    *,
    source: Course,
    destination: Course | None = None,
    name: str | None = None,
    user: User | None = None,
) -> Course:
    """:func:`course_copy_content`, returning only the destination."""
    return course_copy_content(
        source=source, destination=destination, name=name, user=user
    ).destination


def course_reset(*, course: Course, user: User | None = None) -> Course:
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
        settings = {field: getattr(old, field) for field in RESET_FIELDS}
        settings["sis_course_id"] = sis_course_id
        new = course_create(**settings)
        using = old._state.db or "default"
        recording.record_event(
            course=new, event_type=EventType.RESET_FROM, related_course=old, using=using
        )
        recording.record_event(
            course=old, event_type=EventType.RESET_TO, related_course=new, using=using
        )
    course.refresh_from_db()
    return new


def legal_hold_place(
    *,
    reason: str,
    course: Course | None = None,
    account: Account | None = None,
    user: User | None = None,
) -> LegalHold:
    """Put a legal hold on a course, or on an account and every account below it: no month
    holding any of their events is pruned until it is released."""
    if (course is None) == (account is None):
        raise ValidationError(_("A legal hold is on a course or on an account."))
    if not reason.strip():
        raise ValidationError(_("A legal hold needs a reason."))
    return LegalHold.objects.create(
        course=course,
        account=account,
        reason=reason.strip(),
        created_by_id=user.pk if user is not None else None,
    )


def legal_hold_release(*, hold: LegalHold, user: User | None = None) -> LegalHold:
    """Release a hold: from the next prune on, it keeps nothing. Who released it, and when,
    stay on the row."""
    if hold.released_at is not None:
        raise ValidationError(_("This legal hold was already released."))
    hold.released_at = timezone.now()
    hold.released_by_id = user.pk if user is not None else None
    hold.save(update_fields=["released_at", "released_by_id"])
    return hold


def export_job_create(
    *,
    user: User,
    scope: str,
    scope_id: Any,
    subject_name: str = "",
    include_subaccounts: bool = False,
    filters: dict[str, str],
    time_zone: str,
    format: str,
    rows_total: int | None = None,
    request_id: UUID | None = None,
    client_addr: str | None = None,
) -> ExportJob:
    """Record a background export for ``user`` and queue its task once the job is committed
    (a worker must find the row). The caller has checked ``user``'s access to the scope;
    ``request_id`` and ``client_addr`` name the request that asked (the task's access
    record names it)."""
    with transaction.atomic():
        job = ExportJob.objects.create(
            requested_by=user,  # type: ignore[misc]  # the host's user model
            scope=ExportJob.Scope(scope),
            scope_id=str(scope_id),
            subject_name=subject_name[:255],
            include_subaccounts=include_subaccounts,
            filters=filters,
            time_zone=time_zone,
            format=ExportJob.Format(format),
            rows_total=rows_total,
            request_id=request_id,
            client_addr=client_addr,
        )
        transaction.on_commit(lambda: tasks.enqueue(job.pk))
    return job


def export_job_cancel(*, job: ExportJob) -> bool:
    """Cancel a job that has not finished: a queued one never starts, a running one stops at
    its next chunk and keeps no file. False when it had already finished."""
    cancelled = ExportJob.objects.filter(pk=job.pk).exclude(state__in=ExportJob.FINISHED)
    changed = cancelled.update(state=ExportJob.State.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return bool(changed)
