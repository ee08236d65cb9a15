"""The Django admin: every model registered; tokens listed and revocable, never shown."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from course_audit.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    return client


def test_every_model_is_registered():
    models = set(apps.get_app_config("course_audit").get_models())
    assert models <= set(admin.site._registry)


def test_every_changelist_opens(admin_client, course):
    for model in apps.get_app_config("course_audit").get_models():
        url = reverse(f"admin:course_audit_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, url


def test_tokens_are_listed_and_revoked_never_shown(admin_client, make_user):
    owner = make_user("scripter")
    token, plaintext = ApiToken.issue(user=owner, name="nightly sync")
    changelist = reverse("admin:course_audit_apitoken_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "nightly sync" in page
    assert plaintext not in page and token.token_hash not in page
    assert admin_client.get(reverse("admin:course_audit_apitoken_add")).status_code == 403
    response = admin_client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert not ApiToken.objects.usable().filter(pk=token.pk).exists()
