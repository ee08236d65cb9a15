"""Callers of the API: users with tokens in two tenants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from course_audit.models import Account, AccountMembership, ApiToken, Role


class ApiCaller:
    """A test client that sends a bearer token."""

    def __init__(self, client: Client, user: Any) -> None:
        self.client = client
        self.user = user
        _, self.token = ApiToken.issue(user=user)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def send(self, method: str, path: str, data: Any = None, **kwargs: Any) -> Any:
        return getattr(self.client, method)(
            path, data, HTTP_AUTHORIZATION=f"Bearer {self.token}", **kwargs
        )


@pytest.fixture
def teacher_role(db: None) -> Role:
    return Role.objects.create(name="Teacher")


@pytest.fixture
def caller(client: Client, make_user: Callable[..., Any]) -> Callable[..., ApiCaller]:
    def make(name: str, *grants: tuple[Account, Role]) -> ApiCaller:
        user = make_user(name)
        for account, role in grants:
            AccountMembership.objects.create(user=user, account=account, role=role)
        return ApiCaller(client, user)

    return make


@pytest.fixture
def other_root(db: None) -> Account:
    return Account.objects.create(name="Rival College", sis_account_id="RC")
