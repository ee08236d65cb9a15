"""Project-level guarantees: migrations, system checks, management commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError

from course_audit.checks import MIDDLEWARE_PATH
from course_audit.models import ApiToken

AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


@pytest.mark.django_db
def test_migrations_are_complete():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def _check_ids() -> set[str]:
    return {
        message.id
        for message in run_checks()
        if message.id and message.id.startswith("course_audit")
    }


def test_the_demo_configuration_passes_the_checks():
    assert _check_ids() == set()


def test_missing_middleware_is_e001(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert _check_ids() == {"course_audit.E001"}


def test_middleware_before_authentication_is_e002(settings):
    rest = [m for m in settings.MIDDLEWARE if m not in (MIDDLEWARE_PATH, AUTH)]
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, *rest, AUTH]
    assert _check_ids() == {"course_audit.E002"}


@pytest.mark.django_db
def test_create_api_token_prints_only_the_token(make_user):
    user = make_user("scripter")
    out = StringIO()
    call_command("create_api_token", user.get_username(), "--name", "nightly", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    token = ApiToken.objects.get(user=user)
    assert ApiToken.objects.for_plaintext(lines[0]).get() == token
    assert token.name == "nightly"
    assert token.expires_at is None
    assert lines[0] not in token.token_hash


@pytest.mark.django_db
def test_create_api_token_can_expire(make_user):
    user = make_user("scripter")
    call_command(
        "create_api_token", user.get_username(), "--expires-in-days", "30", stdout=StringIO()
    )
    token = ApiToken.objects.get(user=user)
    assert token.expires_at is not None
    assert 29 <= (token.expires_at - token.created_at).days <= 30


@pytest.mark.django_db
def test_create_api_token_for_an_unknown_user_fails():
    with pytest.raises(CommandError, match="No user with login 'ghost'"):
        call_command("create_api_token", "ghost", stdout=StringIO())
