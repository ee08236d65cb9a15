"""People in a browser: logged-in clients for the registrar's pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from course_audit.models import Account, AccountMembership, Course, CourseEvent, Role


@pytest.fixture
def browser(make_user: Callable[..., Any]) -> Callable[..., Client]:
    """A logged-in client for a new user holding the given (account, role) grants."""

    def make(name: str, *grants: tuple[Account, Role]) -> Client:
        user = make_user(name)
        for account, role in grants:
            AccountMembership.objects.create(user=user, account=account, role=role)
        client = Client()
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def registrar_browser(browser: Callable[..., Client], root_account: Account, admin_role: Role):
    return browser("registrar", (root_account, admin_role))


@pytest.fixture
def dept_admin_browser(browser: Callable[..., Client], department: Account, admin_role: Role):
    return browser("dept_admin", (department, admin_role))


@pytest.fixture
def chemistry(college: Account) -> Account:
    return Account.objects.create(name="Chemistry", parent=college, sis_account_id="CHEM")


@pytest.fixture
def add_events() -> Callable[..., list[CourseEvent]]:
    """Insert ``count`` events on a course at ``when`` (all sharing it unless ``step``)."""

    def add(
        course: Course,
        count: int,
        *,
        when: dt.datetime,
        step: dt.timedelta = dt.timedelta(0),
        event_type: str = CourseEvent.EventType.UPDATED,
        event_source: str = CourseEvent.EventSource.MANUAL,
        **fields: Any,
    ) -> list[CourseEvent]:
        data = fields.pop("event_data", {"name": ["a", "b"]})
        return CourseEvent.objects.bulk_create(
            CourseEvent(
                course=course,
                account_id=course.account_id,
                created_at=when + step * index,
                event_type=event_type,
                event_source=event_source,
                event_data=data,
                **fields,
            )
            for index in range(count)
        )

    return add
