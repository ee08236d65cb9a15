"""Verify the course events against the signed checkpoints::

    python manage.py course_audit_verify [--since YYYY-MM-DD] [--digests]
    python manage.py course_audit_verify --archive FILE

Prints each problem found, naming the event (UUID and id) or the checkpoint (sequence),
then one summary line; exits 0 only when everything is intact. ``--archive`` checks one
archive of a pruned month (a local file, or a name in the digest storage) against its
signed manifest and the checkpoints instead. See docs/integrity.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.utils.dateparse import parse_date, parse_datetime

from course_audit import archives, integrity


def _since(value: str) -> dt.datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since must be a date or a date and time, got {value!r}")
        moment = dt.datetime.combine(day, dt.time())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Check the course events and checkpoints for tampering; exit 1 when any is found."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--since",
            type=_since,
            help="check the events of checkpoints made since this date (UTC); the chain of"
            " checkpoints is always checked whole",
        )
        parser.add_argument(
            "--digests", action="store_true", help="also check each checkpoint's digest file"
        )
        parser.add_argument(
            "--archive",
            metavar="FILE",
            help="check this archive of a pruned month (.jsonl.gz or its .manifest.json)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["archive"]:
            self._archive(options)
            return
        report = integrity.verify(
            using=options["database"], since=options["since"], digests=options["digests"]
        )
        for problem in report.problems:
            self.stdout.write(f"{problem.kind}: {problem.message}")
        for backfill in report.backfills:
            self.stdout.write(f"backfill (not a problem): {backfill.message}")
        self.stdout.write(f"course_audit_verify: {report.summary()}")
        if not report.intact:
            raise SystemExit(1)

    def _archive(self, options: dict[str, Any]) -> None:
        if options["since"] or options["digests"]:
            raise CommandError("--archive checks one archive: --since and --digests do not apply")
        try:
            report = archives.verify_archive(options["archive"], using=options["database"])
        except archives.ArchiveError as error:
            raise CommandError(str(error)) from error
        for problem in report.problems:
            self.stdout.write(f"archive: {problem}")
        self.stdout.write(f"course_audit_verify: {report.summary()}")
        if not report.intact:
            raise SystemExit(1)
