"""Seal the course events committed since the last checkpoint::

    python manage.py course_audit_checkpoint

Run it every few minutes (beside ``course_audit_partitions``): each run signs a new
checkpoint over the new events with ``COURSE_AUDIT_SIGNING_KEY`` and writes its digest file
(``COURSE_AUDIT_DIGEST_STORAGE``). Nothing new: nothing is made. See docs/integrity.md.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from course_audit import integrity
from course_audit.conf import conf


class Command(BaseCommand):
    help = "Seal the course events committed since the last checkpoint into signed checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=conf.DIRECT_DATABASE or DEFAULT_DB_ALIAS,
            help="a direct connection to the primary, never a pooler in transaction mode "
            "(default: COURSE_AUDIT_DIRECT_DATABASE, else default)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            made = integrity.seal(using=options["database"])
        except integrity.SealingError as error:
            raise CommandError(str(error)) from error
        for checkpoint in made:
            self.stdout.write(
                f"checkpoint #{checkpoint.sequence}: {checkpoint.count:,} events"
                f" (ids {checkpoint.after_id + 1} to {checkpoint.last_id}), root"
                f" {checkpoint.root}, key {checkpoint.key_id}"
            )
        if not made:
            self.stdout.write("nothing new to seal")
