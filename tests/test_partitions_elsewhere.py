"""On databases other than PostgreSQL the events table is a plain one."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from course_audit import archives, partitions

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor == "postgresql", reason="not PostgreSQL only"),
]


def test_the_partition_command_says_there_is_nothing_to_do(course):
    out = StringIO()
    call_command("course_audit_partitions", "--prune", stdout=out)
    assert "is not partitioned" in out.getvalue()
    assert partitions.list_partitions() == []
    assert partitions.ensure_partitions() == []
    assert archives.prune(keep_months=1).dropped == []
    assert course.events.count() == 1  # nothing was dropped
