from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CourseAuditConfig(AppConfig):
    name = "course_audit"
    verbose_name = _("Course audit log")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, once the app registry is ready: both load the models.
        from course_audit import (
            checks,  # noqa: F401  (registers the system checks)
            receivers,
        )

        receivers.connect_signals(self)
