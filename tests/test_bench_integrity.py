"""The benchmark's integrity section (bench/_integrity.py): it seals and verifies every event
of the database with a key of its own, times a proof request against a page of events, and
leaves no checkpoint behind."""

from __future__ import annotations

import types
from typing import Any

import pytest
from django.db import connection

from bench import _integrity
from course_audit import services
from course_audit.models import ApiToken, Checkpoint, CourseEvent

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the benchmark needs PostgreSQL"
)


def test_every_event_is_sealed_verified_and_timed(
    course: Any, make_user: Any, grant: Any, settings: Any
) -> None:
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 3
    for index in range(7):
        services.course_update(course=course, name=f"Version {index}")
    auditor = make_user("auditor")
    grant(auditor, course.account.root_account)
    _, token = ApiToken.issue(user=auditor, name="bench")
    run = types.SimpleNamespace(
        dataset=types.SimpleNamespace(course=course, token=token),
        args=types.SimpleNamespace(repeat=3, max_seconds=5),
    )

    section = _integrity.measure(run)

    events = CourseEvent.objects.count()
    assert section.raw["events"] == events > 7
    assert section.raw["checkpoints"] == -(-events // 3)
    assert [check.what for check in section.checks] == [
        f"seal {events:,} events, events per second",
        f"verify {events:,} events, events per second",
    ]
    assert all(check.value > 0 for check in section.checks)
    assert section.raw["proof"]["proof"]["n"] == section.raw["proof"]["page"]["n"] == 3
    assert section.raw["proof"]["tree_size"] <= 3
    assert "A proof request" in section.details[-1]
    assert not Checkpoint.objects.exists()
