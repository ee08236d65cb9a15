"""The enumerations of course_audit: event types and sources, and workflow states.

They import nothing of the app, so the pure rules (``course_audit.diff``), the audit
context and the models can all share them. The models keep them as attributes
(``CourseEvent.EventType``, ``Course.WorkflowState``), which is how callers name them.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class EventType(models.TextChoices):
    # A context of their own: some languages word an event unlike a course's state.
    CREATED = "created", pgettext_lazy("event type", "Created")
    UPDATED = "updated", pgettext_lazy("event type", "Updated")
    PUBLISHED = "published", pgettext_lazy("event type", "Published")
    UNPUBLISHED = "unpublished", pgettext_lazy("event type", "Unpublished")
    CONCLUDED = "concluded", pgettext_lazy("event type", "Concluded")
    UNCONCLUDED = "unconcluded", pgettext_lazy("event type", "Unconcluded")
    DELETED = "deleted", pgettext_lazy("event type", "Deleted")
    RESTORED = "restored", pgettext_lazy("event type", "Restored")
    COPIED_FROM = "copied_from", pgettext_lazy("event type", "Copied from")
    COPIED_TO = "copied_to", pgettext_lazy("event type", "Copied to")
    RESET_FROM = "reset_from", pgettext_lazy("event type", "Reset from")
    RESET_TO = "reset_to", pgettext_lazy("event type", "Reset to")


class EventSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    API = "api", _("API")
    SIS = "sis", _("SIS import")


class AccessSurface(models.TextChoices):
    """Where audit data was read (``AccessRecord.surface``)."""

    PAGE = "page", _("Page")
    API = "api", _("API")
    EXPORT = "export", _("Export")
    ADMIN = "admin", _("Admin")
    # A background export's task, reading the events into the job's file.
    JOB = "job", _("Background export")


class AccessScope(models.TextChoices):
    """What a read of audit data asked for (``AccessRecord.scope``)."""

    COURSE = "course", _("Course")
    ACCOUNT = "account", _("Account")
    PERSON = "person", _("Person")
    SIS_BATCH = "sis_batch", _("SIS batch")
    REQUEST = "request", _("Request")
    EVENT = "event", _("Event")
    EVENTS = "events", _("Every event")
    RECENT = "recent", _("Recent activity")
    ACCESS_LOG = "access_log", _("Access log")


class CourseState(models.TextChoices):
    UNPUBLISHED = "unpublished", _("Unpublished")
    AVAILABLE = "available", _("Published")
    COMPLETED = "completed", _("Concluded")
    DELETED = "deleted", _("Deleted")


class AccountState(models.TextChoices):
    ACTIVE = "active", _("Active")
    # A context of its own: some languages agree the word with "account".
    DELETED = "deleted", pgettext_lazy("account state", "Deleted")
