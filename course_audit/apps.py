from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class CourseAuditConfig(AppConfig):
    name = "course_audit"
    verbose_name = _("Course audit log")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from course_audit import (
            checks,  # noqa: F401  (registers the system checks)
            db,
        )

        post_migrate.connect(_make_partitions, sender=self)
        db.connect_signals()


def _make_partitions(using: str = "default", **kwargs: Any) -> None:
    """After ``migrate`` (and ``flush``), the coming months' partitions exist."""
    from course_audit import partitions

    partitions.ensure_partitions(using)
