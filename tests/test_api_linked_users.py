"""``linked.users`` rendered by the host's serializer (COURSE_AUDIT_USER_SERIALIZER)."""

from __future__ import annotations

from typing import Any
from unittest import mock

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


@pytest.mark.parametrize(
    ("first", "last"), [("Ada", "Lovelace"), ("", ""), ("Ada", ""), ("", "Lovelace"), ("  ", "")]
)
def test_users_read_from_the_row_are_what_the_serializer_shows(
    registrar, course, make_user, first, last
):
    """With the default serializer the page reads each user from its row, no instance built:
    the same JSON ``UserSerializer`` gives of the instance, whatever names it has."""
    from django.contrib.auth import get_user_model

    from course_audit.api.serializers import ListingColumns, user_row_reader

    editor = make_user("editor")
    editor.first_name, editor.last_name = first, last
    editor.save()
    with audit_context(user=editor):
        course_update(course=course, name="Biology 102")
    user_model = get_user_model()
    fields = ListingColumns.for_listing(course_known=True).user_fields
    expected = UserSerializer().to_representation(editor)
    reader = user_row_reader(UserSerializer, user_model, fields)
    if reader is None:  # a user model of its own (scripts/test's custom-user part)
        pytest.skip("this user model renders its names its own way")
    from course_audit.api.serializers import time_formatter

    row = {f"u_{field}": getattr(editor, field) for field in fields}
    assert reader(row, "u_", time_formatter()) == expected
    [user] = registrar.get(f"/api/v1/audit/course/courses/{course.pk}").json()["linked"]["users"]
    assert user == expected
    assert list(user) == list(expected)


def test_an_instance_is_built_where_the_row_may_not_say_it_all():
    """A host's serializer, or one that only looks like the default, gets instances."""
    from django.contrib.auth import get_user_model

    from course_audit.api.serializers import ListingColumns, user_row_reader

    fields = ListingColumns.for_listing(course_known=True).user_fields
    assert user_row_reader(DirectoryUserSerializer, get_user_model(), fields) is None
    assert user_row_reader(UserSerializer, get_user_model(), ("id",)) is None

    user_model = get_user_model()
    if user_model._meta.app_label == "auth":  # Django's own User: one that names its own way
        with mock.patch.object(user_model, "get_full_name", lambda self: "someone else"):
            assert user_row_reader(UserSerializer, user_model, fields) is None
        with mock.patch.object(user_model, "from_db", classmethod(lambda cls, *args: None)):
            assert user_row_reader(UserSerializer, user_model, fields) is None
        assert user_row_reader(UserSerializer, user_model, fields) is not None
