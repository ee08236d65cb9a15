"""``linked.users`` rendered by the host's serializer (COURSE_AUDIT_USER_SERIALIZER)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from course_audit.api.serializers import UserSerializer
from course_audit.context import audit_context
from course_audit.services import course_update

pytestmark = pytest.mark.django_db


class DirectoryUserSerializer(UserSerializer):
    """A host's shape: Canvas's fields, named from its own directory, plus a profile link."""

    profile_url = serializers.URLField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["name"] = f"Directory entry {instance.pk}"
        data["profile_url"] = self.context["request"].build_absolute_uri(f"/people/{instance.pk}/")
        return data


HOST_SERIALIZER = "tests.test_api_linked_users.DirectoryUserSerializer"


@pytest.fixture
def registrar(caller, root_account, admin_role):
    return caller("registrar", (root_account, admin_role))


@pytest.fixture
def edited(course, make_user):
    editor = make_user("editor")
    with audit_context(user=editor):
        course_update(course=course, name="Biology 102")
    return editor


def test_by_default_users_have_canvas_s_shape(registrar, course, edited):
    [user] = registrar.get(f"/api/v1/audit/course/courses/{course.pk}").json()["linked"]["users"]
    assert user == UserSerializer().to_representation(edited)
    assert list(user) == ["id", "name", "sortable_name", "short_name", "created_at", "login_id"]
    assert user["id"] == str(edited.pk)
    assert user["login_id"] == edited.get_username()


def test_the_host_serializer_renders_linked_users(registrar, course, edited, settings):
    settings.COURSE_AUDIT_USER_SERIALIZER = HOST_SERIALIZER
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}")
    assert response.status_code == 200
    [user] = response.json()["linked"]["users"]
    assert user["id"] == str(edited.pk)
    assert user["name"] == f"Directory entry {edited.pk}"
    assert user["login_id"] == edited.get_username()
    assert user["profile_url"] == f"http://testserver/people/{edited.pk}/"
    # The events still link the users by id.
    assert {event["links"]["user"] for event in response.json()["events"]} == {str(edited.pk), None}


def test_the_schema_describes_the_host_s_users(client, settings):
    settings.COURSE_AUDIT_USER_SERIALIZER = HOST_SERIALIZER
    schema = client.get("/api/schema/", {"format": "json"}).json()
    linked = schema["components"]["schemas"]["Linked"]["properties"]["users"]
    assert linked["items"] == {"$ref": "#/components/schemas/DirectoryUser"}
    assert "profile_url" in schema["components"]["schemas"]["DirectoryUser"]["properties"]


def test_the_default_schema_names_canvas_s_user(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    linked = schema["components"]["schemas"]["Linked"]["properties"]["users"]
    assert linked["items"] == {"$ref": "#/components/schemas/User"}


def test_a_deleted_user_stays_in_the_links_and_drops_out_of_linked_users(registrar, course, edited):
    editor_pk = edited.pk
    edited.delete()
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}")
    assert response.status_code == 200
    body = response.json()
    renamed = next(event for event in body["events"] if event["event_type"] == "updated")
    assert renamed["links"]["user"] == str(editor_pk)  # events never change
    assert body["linked"]["users"] == []
