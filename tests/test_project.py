"""Project-level guarantees: migrations and management commands (checks: test_checks.py)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from course_audit.models import ApiToken


@pytest.mark.django_db
def test_migrations_are_complete():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


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
