"""Signals a host can subscribe to.

``events_recorded`` is sent once per batch of recorded events, after the transaction that
wrote them commits, and never for a change that was rolled back::

    from django.dispatch import receiver
    from course_audit.signals import events_recorded

    @receiver(events_recorded)
    def notify(sender, events, using, **kwargs):
        for event in events:
            ...

``sender`` is ``CourseEvent``; ``events`` is a list of ``CourseEvent`` instances holding
what was written (identify one by its ``uuid``, the API's id: ``pk`` is ``None`` for a big
batch that PostgreSQL took by ``COPY``); ``using`` is the database alias. Receivers run
after the commit, so a receiver that fails cannot undo the change: its exception is
logged (``django.dispatch``) and the other receivers still run.
"""

from __future__ import annotations

from django.dispatch import Signal

events_recorded = Signal()
