"""Per-connection set-up on PostgreSQL.

``COURSE_AUDIT_ALLOW_TRUNCATE = True`` (for test settings only) lets ``TRUNCATE`` through
the events table's append-only trigger on every connection the site opens, which is what
Django's ``flush`` needs between ``TransactionTestCase`` tests. Production leaves it off:
there, course events leave only by whole months (``course_audit_partitions --prune``).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.signals import connection_created

from course_audit.conf import conf


def connect_signals() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="course_audit.db")


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "postgresql" and conf.ALLOW_TRUNCATE:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('course_audit.allow_truncate', 'on', false)")
