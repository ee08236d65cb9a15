"""The app's signal receivers, connected by ``CourseAuditConfig.ready()``.

- After ``migrate`` (and ``flush``), the coming months' partitions of the events and access
  records tables exist (PostgreSQL; see ``course_audit.partitions``).
- ``COURSE_AUDIT_ALLOW_TRUNCATE = True`` (for test settings only) lets ``TRUNCATE`` through
  the events table's append-only trigger on every connection the site opens, which is what
  Django's ``flush`` needs between ``TransactionTestCase`` tests. Production leaves it off:
  there, course events leave only by whole months (``course_audit_partitions --prune``).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate

from course_audit import partitions
from course_audit.conf import conf


def connect_signals(app_config: AppConfig) -> None:
    post_migrate.connect(make_partitions, sender=app_config)
    connection_created.connect(allow_truncate, dispatch_uid="course_audit.receivers")


def make_partitions(using: str = "default", **kwargs: Any) -> None:
    """After ``migrate`` (and ``flush``), the coming months' partitions exist."""
    for table in partitions.TABLES:
        partitions.ensure_partitions(using, table=table)


def allow_truncate(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Let ``TRUNCATE`` through the append-only trigger when the settings ask for it."""
    if connection.vendor == "postgresql" and conf.ALLOW_TRUNCATE:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('course_audit.allow_truncate', 'on', false)")
