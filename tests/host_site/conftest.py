"""Campus Registrar's test fixtures: its people, its account tree, its registrar."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from course_audit.models import Account, AccountMembership, ApiToken, Role
from django.core.management import call_command

from catalog import receivers, tasks

_numbers = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _collected_static(django_db_setup: None) -> None:
    """The site serves hashed static files (ManifestStaticFilesStorage): collect them."""
    call_command("collectstatic", interactive=False, clear=True, verbosity=0)


@pytest.fixture(autouse=True)
def _empty_queues() -> Iterator[None]:
    receivers.OUTBOX.clear()
    tasks.PENDING.clear()
    yield
    receivers.OUTBOX.clear()
    tasks.PENDING.clear()


@pytest.fixture
def make_member(db: None, django_user_model: Any) -> Callable[..., Any]:
    def make(email: str | None = None, **fields: Any) -> Any:
        email = email or f"member{next(_numbers)}@campus.example"
        fields.setdefault("full_name", email.split("@")[0].replace(".", " ").title())
        return django_user_model.objects.create_user(email=email, password="s3cret!", **fields)

    return make


@pytest.fixture
def campus(db: None) -> Account:
    return Account.objects.create(name="Campus", sis_account_id="CAMPUS")


@pytest.fixture
def history_dept(campus: Account) -> Account:
    return Account.objects.create(name="History", parent=campus, sis_account_id="HIST")


@pytest.fixture
def auditor_role(db: None) -> Role:
    return Role.objects.create(name="Auditor", view_course_changes=True, manage_courses=True)


@pytest.fixture
def registrar(make_member: Callable[..., Any], campus: Account, auditor_role: Role) -> Any:
    member = make_member("rita.registrar@campus.example", preferred_name="Rita")
    AccountMembership.objects.create(user=member, account=campus, role=auditor_role)
    return member


@pytest.fixture
def registrar_token(registrar: Any) -> str:
    return ApiToken.issue(user=registrar)[1]
