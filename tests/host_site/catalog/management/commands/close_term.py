"""``manage.py close_term ACCOUNT_ID --by EMAIL``: conclude every published course of an
account, recorded as the registrar who ran it."""

from __future__ import annotations

from typing import Any

from course_audit.context import audit_context
from course_audit.models import Course
from course_audit.services import course_conclude
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Conclude the published courses of an account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account_id", type=int)
        parser.add_argument("--by", required=True, help="the registrar's email")

    def handle(self, *args: Any, account_id: int, by: str, **options: Any) -> None:
        registrar = get_user_model().objects.get(email=by)
        courses = Course.objects.filter(account_id=account_id, workflow_state="available")
        with audit_context(user=registrar, source="manual"):
            for course in courses:
                course_conclude(course=course)
                self.stdout.write(f"concluded {course.pk}")
