from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from course_audit.models import ApiToken


class Command(BaseCommand):
    help = "Issue an API token for a user and print it, alone on one line (it is stored hashed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user's login (their USERNAME_FIELD).")
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Expire the token after N days."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(options["username"])
        except user_model.DoesNotExist as error:
            raise CommandError(f"No user with login {options['username']!r}.") from error
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        _, plaintext = ApiToken.issue(user=user, name=options["name"], expires_at=expires_at)
        self.stdout.write(plaintext)
