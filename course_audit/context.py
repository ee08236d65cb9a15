"""The audit context: who is acting, how, and in which request.

It lives in a ``ContextVar``, so threads and asyncio tasks never see each other's actor.
``AuditContextMiddleware`` sets it for every HTTP request; scripts, management commands
and background jobs use :func:`audit_context`::

    with audit_context(user=registrar, source=CourseEvent.EventSource.MANUAL):
        course_publish(course=course)

A job queued from a request (a Celery task, a thread) does not inherit the context: take
:func:`capture_audit_context` when queuing it, pass it along with the job's arguments (it is
JSON), and run the job inside :func:`use_audit_context`, so its events keep the actor::

    close_course.delay(course.pk, audit=capture_audit_context())

    @shared_task
    def close_course(course_id, audit):
        with use_audit_context(audit):
            course_conclude(course=Course.objects.get(pk=course_id))
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.auth import get_user_model

from course_audit.choices import EventSource

if TYPE_CHECKING:
    from django.http import HttpRequest

    from course_audit.models import SisBatch
    from course_audit.types import User


@dataclasses.dataclass
class RequestTrace:
    """What one HTTP request recorded: enough to write its page view afterwards."""

    events_recorded: int = 0
    course_id: int | None = None
    account_id: int | None = None
    # Every account the request's events were recorded in (``account_id`` is the first).
    account_ids: set[int] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(frozen=True)
class AuditContext:
    """Attribution for the events recorded while it is active."""

    user: User | None = None
    source: str = "manual"
    sis_batch: SisBatch | None = None
    request_id: uuid.UUID | None = None
    request: HttpRequest | None = None
    # Only for backfills that import history from elsewhere (and the demo seed).
    occurred_at: datetime | None = None
    trace: RequestTrace | None = None

    def actor(self) -> User | None:
        """The acting user: the explicit one, else the request's authenticated user."""
        if self.user is not None:
            return self.user
        if self.request is not None:
            user = getattr(self.request, "user", None)
            if user is not None and user.is_authenticated:
                return user
        return None


_current: ContextVar[AuditContext | None] = ContextVar("course_audit_context", default=None)


def get_audit_context() -> AuditContext:
    """The active audit context; outside any, an anonymous ``manual`` one."""
    return _current.get() or AuditContext()


# "Not given": ``None`` is a value ``audit_context`` can set (no user, no request).
_KEEP: Any = object()


@contextmanager
def audit_context(
    *,
    user: User | None = _KEEP,
    source: str = _KEEP,
    sis_batch: SisBatch | None = _KEEP,
    request_id: uuid.UUID | None = _KEEP,
    request: HttpRequest | None = _KEEP,
    occurred_at: datetime | None = _KEEP,
    trace: RequestTrace | None = _KEEP,
) -> Iterator[AuditContext]:
    """Overlay the given attribution on the active audit context for the duration of the
    block; what is not given stays as it is.

    ``source`` is one of ``EventSource``'s values (``ValueError`` otherwise);
    ``occurred_at`` dates the block's events (backfills only).
    """
    given = {
        "user": user,
        "source": source,
        "sis_batch": sis_batch,
        "request_id": request_id,
        "request": request,
        "occurred_at": occurred_at,
        "trace": trace,
    }
    changes: dict[str, Any] = {name: value for name, value in given.items() if value is not _KEEP}
    if "source" in changes:
        changes["source"] = EventSource(changes["source"]).value
    context = dataclasses.replace(get_audit_context(), **changes)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def capture_audit_context() -> dict[str, Any]:
    """The active attribution as JSON-safe data, for a job to restore with
    :func:`use_audit_context`: the actor's id (the request's user in a view), the source,
    the SIS batch's id and the id of the request that queued the job."""
    context = get_audit_context()
    actor = context.actor()
    return {
        # A string, so that a UUID primary key travels as JSON too.
        "user_id": str(actor.pk) if actor is not None else None,
        "source": context.source,
        "sis_batch_id": context.sis_batch.pk if context.sis_batch is not None else None,
        "request_id": str(context.request_id) if context.request_id is not None else None,
    }


@contextmanager
def use_audit_context(snapshot: Mapping[str, Any]) -> Iterator[AuditContext]:
    """Record the block's events as :func:`capture_audit_context` saw them.

    Loads the actor (one query); an actor deleted since leaves the events without a user.
    """
    user, sis_batch, request_id = None, None, None
    if snapshot.get("user_id") is not None:
        user = get_user_model()._default_manager.filter(pk=snapshot["user_id"]).first()
    if snapshot.get("sis_batch_id") is not None:
        batches = apps.get_model("course_audit", "SisBatch")._default_manager
        sis_batch = batches.filter(pk=snapshot["sis_batch_id"]).first()
    if snapshot.get("request_id") is not None:
        request_id = uuid.UUID(snapshot["request_id"])
    with audit_context(
        user=user,
        source=snapshot.get("source", "manual"),
        sis_batch=sis_batch,
        request_id=request_id,
        request=None,
        trace=None,
    ) as context:
        yield context
