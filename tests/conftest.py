"""Fixtures and factories shared by the test suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from hypothesis import settings as hypothesis_settings

from course_audit import services
from course_audit.models import Account, AccountMembership, Course, Role

_counter = itertools.count(1)

# A site of its own, with its own settings, run against the installed wheel by
# scripts/host_smoke.
collect_ignore = ["host_site"]

# Property tests (tests/test_properties.py) run the same examples on every run and machine,
# with no example database left behind and no per-example deadline on a busy CI box; each
# test sets its own max_examples.
hypothesis_settings.register_profile("course_audit", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("course_audit")


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    """Create a user of the active user model (custom or not), password ``demo``."""
    user_model = get_user_model()

    def make(name: str | None = None, **fields: Any) -> Any:
        name = name or f"user{next(_counter)}"
        username_field = user_model.USERNAME_FIELD
        value = f"{name}@example.edu" if username_field == "email" else name
        fields.setdefault(username_field, value)
        return user_model.objects.create_user(password="demo", **fields)

    return make


@pytest.fixture
def root_account(db: None) -> Account:
    return Account.objects.create(name="State University", sis_account_id="SU")


@pytest.fixture
def college(root_account: Account) -> Account:
    return Account.objects.create(
        name="College of Science", parent=root_account, sis_account_id="SCI"
    )


@pytest.fixture
def department(college: Account) -> Account:
    return Account.objects.create(name="Biology", parent=college, sis_account_id="BIO")


@pytest.fixture
def make_course(department: Account) -> Callable[..., Course]:
    def make(**fields: Any) -> Course:
        fields.setdefault("account", department)
        fields.setdefault("name", f"Course {next(_counter)}")
        return services.course_create(**fields)

    return make


@pytest.fixture
def course(make_course: Callable[..., Course]) -> Course:
    return make_course(name="Biology 101", course_code="BIO101", sis_course_id="BIO101-F25")


@pytest.fixture
def admin_role(db: None) -> Role:
    return Role.objects.create(name="Account admin", view_course_changes=True, manage_courses=True)


@pytest.fixture
def grant(admin_role: Role) -> Callable[..., AccountMembership]:
    def make(user: Any, account: Account, role: Role | None = None) -> AccountMembership:
        return AccountMembership.objects.create(user=user, account=account, role=role or admin_role)

    return make


@pytest.fixture
def keys(tmp_path: Path, settings: Any) -> Path:
    """A signing key (tamper evidence), and digests in a directory of the test's own."""
    call_command("course_audit_keygen", str(tmp_path / "signing.pem"), stdout=StringIO())
    settings.COURSE_AUDIT_SIGNING_KEY = str(tmp_path / "signing.pem")
    settings.COURSE_AUDIT_DIGEST_DIR = str(tmp_path / "store")
    return tmp_path


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


pytest_plugins = ["tests.api_fixtures", "tests.page_fixtures", "tests.matrix_fixtures"]
