"""Make the coming months' partitions of the events and the access records, and drop the
months past retention.

Run it daily (cron, a systemd timer, a Kubernetes CronJob)::

    python manage.py course_audit_partitions --prune

Without ``--prune`` it only makes partitions: this month and ``--ahead`` months after it
(and back to ``--from``), then lists them. With ``--prune`` it also archives, then detaches
and drops, each month whose rows are all older than ``--keep-months`` months (default
``COURSE_AUDIT_RETENTION_MONTHS``, 14), unless a legal hold keeps it, and drops each month
of access records older than ``COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS`` (24; no archive,
no hold); ``--dry-run`` shows what would go, how many rows, and what the holds keep, and
changes nothing.
``--restore YYYY-MM`` loads an archived month back (see ``course_audit.archives``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

from course_audit import access_log, archives, partitions
from course_audit.conf import conf


def _month(value: str) -> dt.date:
    try:
        return dt.datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise CommandError(f"--from must be a month as YYYY-MM, got {value!r}") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise CommandError(f"expected a positive whole number of months, got {value!r}")
    return number


class Command(BaseCommand):
    help = "Make the coming months' course event partitions; with --prune, drop old months."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=conf.DIRECT_DATABASE or DEFAULT_DB_ALIAS,
            help="a direct connection to the primary, never a pooler in transaction mode "
            "(default: COURSE_AUDIT_DIRECT_DATABASE, else default)",
        )
        parser.add_argument(
            "--ahead",
            type=int,
            default=partitions.MONTHS_AHEAD,
            help=f"months to make after this one (default {partitions.MONTHS_AHEAD})",
        )
        parser.add_argument(
            "--from",
            dest="start",
            type=_month,
            help="also make the months from this one (YYYY-MM), e.g. before a backfill",
        )
        parser.add_argument("--prune", action="store_true", help="drop the months past retention")
        parser.add_argument(
            "--keep-months",
            type=_positive,
            help="months of events to keep (default COURSE_AUDIT_RETENTION_MONTHS)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="with --prune: list, do not drop"
        )
        parser.add_argument(
            "--restore",
            metavar="YYYY-MM",
            help="load an archived month back into its partition, after its archive verifies",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        if using not in connections:
            raise CommandError(f"--database: no database alias {using!r} in DATABASES")
        if options["ahead"] < 0:
            raise CommandError("--ahead must be 0 or more")
        if not options["prune"] and (options["dry_run"] or options["keep_months"]):
            raise CommandError("--dry-run and --keep-months go with --prune")
        if options["restore"] and options["prune"]:
            raise CommandError("--restore and --prune go one at a time")
        if not partitions.is_partitioned(using):
            self.stdout.write(
                f"The events table on {using!r} is not partitioned (partitions need "
                "PostgreSQL and migration course_audit 0004); nothing to do."
            )
            return
        if options["restore"]:
            self._restore(using, options["restore"])
            return
        try:
            if options["prune"]:
                self._prune(using, options)
            if not options["dry_run"]:
                for table in partitions.TABLES:
                    made = partitions.ensure_partitions(
                        using, start=options["start"], months_ahead=options["ahead"], table=table
                    )
                    for name in made:
                        self.stdout.write(f"made {name}")
        except OperationalError as error:
            # Most often the lock timeout: a long query held the table. Try again later.
            raise CommandError(f"the partitions were left as they were: {error}") from error
        if options["verbosity"] >= 1 and not options["dry_run"]:
            self._list(using)

    def _prune(self, using: str, options: dict[str, Any]) -> None:
        keep = options["keep_months"] or conf.RETENTION_MONTHS
        if keep is None:
            raise CommandError(
                "COURSE_AUDIT_RETENTION_MONTHS is None (keep everything): "
                "pass --keep-months N to prune anyway"
            )
        dry_run = options["dry_run"]
        outcome = archives.prune(using, keep_months=keep, dry_run=dry_run)
        verb = "would drop" if dry_run else "dropped"
        for part, note in outcome.dropped:
            archived = f", archived to {note.archive}" if note is not None else ""
            self.stdout.write(f"{verb} {part.name} ({part.label()}): {part.rows:,} rows{archived}")
        for part, holds in outcome.held:
            names = "; ".join(f"#{hold.pk} ({hold}: {hold.reason})" for hold in holds)
            self.stdout.write(f"kept {part.name} ({part.label()}) for legal hold {names}")
        for part, reason in outcome.refused:
            self.stderr.write(f"kept {part.name} ({part.label()}): {reason}")
        if not (outcome.dropped or outcome.held or outcome.refused):
            self.stdout.write(f"no month is wholly older than {outcome.cutoff:%Y-%m-%d %H:%M} UTC")
        cutoff = outcome.cutoff
        stranded = partitions.default_rows_before(using, cutoff)
        if stranded:
            self.stderr.write(
                f"{stranded:,} rows older than {cutoff:%Y-%m-%d} are in the default "
                "partition, which is never dropped: make their months with --from YYYY-MM "
                "(which moves them), then prune again."
            )
        self._prune_access_records(using, dry_run)

    def _prune_access_records(self, using: str, dry_run: bool) -> None:
        keep = conf.ACCESS_LOG_RETENTION_MONTHS
        if keep is None:
            self.stdout.write("access records: kept (COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS)")
            return
        verb = "would drop" if dry_run else "dropped"
        for part in access_log.prune(using, keep_months=keep, dry_run=dry_run):
            self.stdout.write(f"{verb} {part.name} ({part.label()}): {part.rows:,} rows")

    def _restore(self, using: str, month: str) -> None:
        try:
            note = archives.restore_month(month, using=using)
        except archives.ArchiveError as error:
            raise CommandError(f"nothing was restored: {error}") from error
        self.stdout.write(
            f"restored {note.count:,} events of {month} from {note.archive} into"
            f" {partitions.month_partition_name(note.month)}"
        )
        self.stdout.write(
            "The month is past retention: the next --prune archives and drops it again,"
            " unless a legal hold keeps it."
        )

    def _list(self, using: str) -> None:
        for table in partitions.TABLES:
            for part in partitions.list_partitions(using, table):
                self.stdout.write(f"  {part.name}: {part.label()}")
