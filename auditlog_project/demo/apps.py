from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    name = "auditlog_project.demo"
    # Prefixed, so that a host's own "demo" app can never clash with it.
    label = "course_audit_demo"
    verbose_name = _("Course audit demo")
    default_auto_field = "django.db.models.BigAutoField"
