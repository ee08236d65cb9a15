"""``manage.py course_audit_exports --recover``: queue again the background exports a stopped
worker left running (``course_audit.tasks.export_jobs_recover``). Run it before the task
workers start (``scripts/demo`` does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from course_audit import tasks


class Command(BaseCommand):
    help = "Queue again the background exports a stopped worker left running."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recover",
            action="store_true",
            help="Queue every job left running again, from the start (before workers start).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["recover"]:
            self.stdout.write("Nothing to do: pass --recover.")
            return
        ids = tasks.export_jobs_recover()
        self.stdout.write(f"{len(ids)} export job(s) queued again.")
