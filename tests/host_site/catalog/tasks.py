"""The site's background jobs. In production a Celery worker runs them; here a small
in-process queue with the same contract: arguments travel as JSON, and the job runs later,
in another thread, after the request that queued it has answered."""

from __future__ import annotations

import json
import threading
from typing import Any

from course_audit.context import capture_audit_context, use_audit_context
from course_audit.models import Course
from course_audit.services import course_conclude
from django.db import close_old_connections, connections

PENDING: list[str] = []


def delay(task_name: str, **kwargs: Any) -> None:
    """Queue a job, with the audit context of whoever queued it."""
    PENDING.append(
        json.dumps({"task": task_name, "kwargs": kwargs, "audit": capture_audit_context()})
    )


def conclude_course(course_id: int) -> None:
    course_conclude(course=Course.objects.get(pk=course_id))


TASKS = {"conclude_course": conclude_course}


def run_pending() -> None:
    """What the worker does with each message."""

    def work(message: dict[str, Any]) -> None:
        close_old_connections()
        try:
            with use_audit_context(message["audit"]):
                TASKS[message["task"]](**message["kwargs"])
        finally:
            connections.close_all()

    while PENDING:
        worker = threading.Thread(target=work, args=(json.loads(PENDING.pop(0)),))
        worker.start()
        worker.join()
