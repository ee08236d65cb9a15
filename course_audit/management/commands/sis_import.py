from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from course_audit.models import Account
from course_audit.sis import SisImportError, import_courses_csv


class Command(BaseCommand):
    help = (
        "Import a Canvas SIS courses.csv into a root account as one SIS batch. Bad rows are "
        "skipped and printed to stderr as 'line N: <reason>'; the summary goes to stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="courses.csv", help="The CSV file to import.")
        parser.add_argument(
            "--account", type=int, required=True, help="The id of the root account to import into."
        )
        parser.add_argument(
            "--user", default=None, help="The login of the user to record as the importer."
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Draw no progress bar (none is drawn when stderr is not a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            account = Account.objects.get(pk=options["account"])
        except Account.DoesNotExist as error:
            raise CommandError(f"No account with id {options['account']}.") from error
        user = None
        if options["user"] is not None:
            user_model = get_user_model()
            try:
                user = user_model._default_manager.get_by_natural_key(options["user"])
            except user_model.DoesNotExist as error:
                raise CommandError(f"No user with login {options['user']!r}.") from error
        try:
            batch = import_courses_csv(
                file=path,
                root_account=account,
                user=user,
                progress=not options["no_progress"] and self.stderr.isatty(),
            )
        except SisImportError as error:
            raise CommandError(str(error)) from error
        for message in batch.messages:
            self.stderr.write(message)
        self.stdout.write(
            f"SIS batch {batch.pk} ({batch.filename}): {batch.get_workflow_state_display()}\n"
            f"rows read: {batch.rows_total}\n"
            f"rows applied: {batch.rows_applied}\n"
            f"rows skipped: {batch.rows_skipped}\n"
            f"courses created: {batch.courses_created}\n"
            f"courses changed: {batch.courses_updated}"
        )
