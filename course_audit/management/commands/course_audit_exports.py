"""``manage.py course_audit_exports``: the background exports' housekeeping.

- ``--recover`` queues again the jobs a stopped worker left running
  (``course_audit.tasks.export_jobs_recover``). Run it before the task workers start
  (``scripts/demo`` does).
- ``--prune`` deletes the finished jobs older than ``COURSE_AUDIT_EXPORT_RETENTION_DAYS``
  (or ``--keep-days``), with their files (``course_audit.tasks.export_jobs_prune``); with
  ``--dry-run`` it only lists them. Run it daily, beside ``course_audit_partitions``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from course_audit import tasks
from course_audit.conf import conf


class Command(BaseCommand):
    help = "Queue again the exports a stopped worker left running; delete old finished ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recover",
            action="store_true",
            help="Queue every job left running again, from the start (before workers start).",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Delete finished jobs older than COURSE_AUDIT_EXPORT_RETENTION_DAYS, and "
            "their files.",
        )
        parser.add_argument(
            "--keep-days",
            type=int,
            help="With --prune: keep this many days instead of the setting.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="With --prune: list, delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["recover"] or options["prune"]):
            raise CommandError("Nothing to do: pass --recover, --prune or both.")
        if options["recover"]:
            ids = tasks.export_jobs_recover()
            self.stdout.write(f"{len(ids)} export job(s) queued again.")
        if options["prune"]:
            self._prune(options["keep_days"], options["dry_run"])

    def _prune(self, keep_days: int | None, dry_run: bool) -> None:
        keep = keep_days if keep_days is not None else conf.EXPORT_RETENTION_DAYS
        if keep is None:
            self.stdout.write("Every export job is kept (COURSE_AUDIT_EXPORT_RETENTION_DAYS=None).")
            return
        if keep < 1:
            raise CommandError("--keep-days must be at least 1.")
        jobs = tasks.export_jobs_prune(keep_days=keep, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        for job in jobs:
            finished = job.finished_at or job.created_at
            self.stdout.write(f"{verb} export job {job.pk}: {job} (finished {finished:%Y-%m-%d})")
        self.stdout.write(f"{verb} {len(jobs)} export job(s) older than {keep} day(s).")
