"""The audit context: who is acting, how, and in which request.

It lives in a ``ContextVar``, so threads and asyncio tasks never see each other's actor.
``AuditContextMiddleware`` sets it for every HTTP request; scripts, management commands
and background jobs use :func:`audit_context`::

    with audit_context(user=registrar, source=CourseEvent.EventSource.MANUAL):
        course_publish(course=course)
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest

    from course_audit.models import SisBatch


@dataclasses.dataclass
class RequestTrace:
    """What one HTTP request recorded: enough to write its page view afterwards."""

    events_recorded: int = 0
    course_id: int | None = None
    account_id: int | None = None


@dataclasses.dataclass(frozen=True)
class AuditContext:
    """Attribution for the events recorded while it is active."""

    user: Any = None
    source: str = "manual"
    sis_batch: SisBatch | None = None
    request_id: uuid.UUID | None = None
    request: HttpRequest | None = None
    # Only for backfills that import history from elsewhere (and the demo seed).
    occurred_at: datetime | None = None
    trace: RequestTrace | None = None

    def actor(self) -> Any:
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


@contextmanager
def audit_context(**changes: Any) -> Iterator[AuditContext]:
    """Overlay ``changes`` (``user``, ``source``, ``sis_batch``, ``request_id`` ...) on the
    active audit context for the duration of the block."""
    if "source" in changes:
        from course_audit.models import CourseEvent

        changes["source"] = CourseEvent.EventSource(changes["source"]).value
    context = dataclasses.replace(get_audit_context(), **changes)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
