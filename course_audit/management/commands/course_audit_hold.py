"""Place, list and release legal holds::

    python manage.py course_audit_hold place --course ID --reason "Case 2026-14" [--by USERNAME]
    python manage.py course_audit_hold place --account ID --reason "..." [--by USERNAME]
    python manage.py course_audit_hold list [--all]
    python manage.py course_audit_hold release HOLD_ID [--by USERNAME]

A hold on an account covers the courses of every account below it. While a hold is active,
``course_audit_partitions --prune`` keeps every month holding any of its events (and
``--prune --dry-run`` says so). See docs/integrity.md.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from course_audit import services
from course_audit.models import Account, Course, LegalHold
from course_audit.types import User


def _user(username: str | None) -> User | None:
    if username is None:
        return None
    model = get_user_model()
    try:
        return model.objects.get(**{model.USERNAME_FIELD: username})
    except model.DoesNotExist:
        raise CommandError(f"--by: no user {username!r}") from None


class Command(BaseCommand):
    help = "Place, list or release legal holds on courses and accounts."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        place = actions.add_parser("place", help="put a hold on a course or an account")
        target = place.add_mutually_exclusive_group(required=True)
        target.add_argument("--course", type=int, help="the course's id")
        target.add_argument("--account", type=int, help="the account's id (and its subtree)")
        place.add_argument("--reason", required=True, help="why: a case, a request, a law")
        place.add_argument("--by", help="the username of who placed it")
        listing = actions.add_parser("list", help="the active holds (--all: released too)")
        listing.add_argument("--all", action="store_true")
        release = actions.add_parser("release", help="release a hold")
        release.add_argument("hold", type=int, help="the hold's id")
        release.add_argument("--by", help="the username of who released it")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "place":
                self._place(options)
            elif action == "release":
                self._release(options)
            else:
                self._list(all_holds=options["all"])
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error

    def _place(self, options: dict[str, Any]) -> None:
        course = account = None
        if options["course"] is not None:
            course = Course.objects.filter(pk=options["course"]).first()
            if course is None:
                raise CommandError(f"--course: no course {options['course']}")
        else:
            account = Account.objects.filter(pk=options["account"]).first()
            if account is None:
                raise CommandError(f"--account: no account {options['account']}")
        hold = services.legal_hold_place(
            course=course, account=account, reason=options["reason"], user=_user(options["by"])
        )
        self.stdout.write(f"placed {hold}: {hold.reason}")

    def _release(self, options: dict[str, Any]) -> None:
        hold = LegalHold.objects.filter(pk=options["hold"]).first()
        if hold is None:
            raise CommandError(f"no legal hold #{options['hold']}")
        services.legal_hold_release(hold=hold, user=_user(options["by"]))
        self.stdout.write(f"released {hold}")

    def _list(self, *, all_holds: bool) -> None:
        holds = LegalHold.objects.select_related("created_by", "released_by").order_by("pk")
        if not all_holds:
            holds = holds.filter(released_at__isnull=True)
        for hold in holds:
            by = f" by {hold.created_by}" if hold.created_by else ""
            state = (
                f", released {hold.released_at:%Y-%m-%d %H:%M}"
                + (f" by {hold.released_by}" if hold.released_by else "")
                if hold.released_at
                else ""
            )
            self.stdout.write(
                f"#{hold.pk} {hold}: set {hold.created_at:%Y-%m-%d %H:%M}{by}{state}: {hold.reason}"
            )
        if not holds:
            self.stdout.write("no legal holds" if all_holds else "no active legal holds")
