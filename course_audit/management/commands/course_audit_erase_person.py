"""Erase a person's name from the course events (a privacy request)::

    python manage.py course_audit_erase_person USER_ID

Blanks ``user_name`` on every event the user acted in and keeps, in its place, the salted
digest the checkpoints sealed, so verification stays clean. The user id stays: it names
no one once the account is gone. See docs/integrity.md.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from course_audit import integrity


class Command(BaseCommand):
    help = "Blank the stored user name of a person's course events, keeping verification clean."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id", help="the acting user's id")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        changed = integrity.erase_person(user_id=options["user_id"], using=options["database"])
        self.stdout.write(f"erased the name from {changed:,} events of user {options['user_id']}")
