"""The site hears about every recorded course event, once it is committed."""

from __future__ import annotations

from typing import Any

from course_audit.signals import events_recorded
from django.dispatch import receiver

# What the site would hand to its notification service.
OUTBOX: list[dict[str, Any]] = []


@receiver(events_recorded)
def queue_notifications(sender: Any, events: list[Any], using: str, **kwargs: Any) -> None:
    OUTBOX.append(
        {
            "batch": [(str(event.uuid), event.course_id, event.event_type) for event in events],
            "using": using,
        }
    )
