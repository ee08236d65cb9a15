"""Who, how and in which request: attribution of recorded events."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import path, reverse
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from course_audit import services
from course_audit.api.authentication import BearerTokenAuthentication
from course_audit.context import audit_context, get_audit_context
from course_audit.models import ApiToken, Course, CourseEvent, PageView
from tests.helpers import events_of, last_event

pytestmark = pytest.mark.django_db


class RenameView(APIView):
    """A minimal API view for these tests: renames a course through the service."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request: Request, pk: int) -> Response:
        course = Course.objects.get(pk=pk)
        services.course_update(course=course, name=request.data["name"])
        return Response({"ok": True})


urlpatterns = [path("api/v1/test/rename/<int:pk>", RenameView.as_view(), name="rename")]


@pytest.fixture
def registrar(make_user):
    return (
        make_user("registrar", first_name="Rita", last_name="Registrar")
        if hasattr(get_user_model(), "first_name")
        else make_user("registrar")
    )


@pytest.mark.urls("tests.test_attribution")
def test_an_api_token_request_records_api_events_by_the_token_user(client, course, registrar):
    _, token = ApiToken.issue(user=registrar)
    response = client.post(
        f"/api/v1/test/rename/{course.pk}",
        {"name": "Renamed by API"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200
    event = last_event(course)
    assert event.event_type == "updated"
    assert event.event_source == "api"
    assert event.user == registrar
    assert event.user_name == _display(registrar)
    assert str(event.page_view_id) == response["X-Request-Id"]
    page_view = PageView.objects.get(pk=event.page_view_id)
    assert page_view.user == registrar
    assert page_view.http_method == "POST"
    assert page_view.url == f"http://testserver/api/v1/test/rename/{course.pk}"
    assert page_view.context_type == "Course"
    assert page_view.context_id == course.pk
    assert page_view.account_id == course.account_id
    assert page_view.render_time is not None and page_view.render_time >= 0
    assert ApiToken.objects.get(user=registrar).last_used_at is not None


@pytest.mark.urls("tests.test_attribution")
@pytest.mark.parametrize("header", ["Bearer nope", "Bearer", "Bearer a b"])
def test_a_bad_token_changes_nothing(client, course, header):
    response = client.post(
        f"/api/v1/test/rename/{course.pk}",
        {"name": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="course_audit"'
    assert events_of(course)[-1].event_type == "created"
    assert not PageView.objects.exists()


@pytest.mark.urls("tests.test_attribution")
def test_a_revoked_or_expired_token_is_refused(client, course, registrar):
    from datetime import timedelta

    from django.utils import timezone

    revoked, revoked_plain = ApiToken.issue(user=registrar)
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    _, expired_plain = ApiToken.issue(
        user=registrar, expires_at=timezone.now() - timedelta(seconds=1)
    )
    for plaintext in (revoked_plain, expired_plain):
        response = client.post(
            f"/api/v1/test/rename/{course.pk}",
            {"name": "x"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {plaintext}",
        )
        assert response.status_code == 401
    assert Course.objects.get(pk=course.pk).name == "Biology 101"


def test_tokens_are_stored_hashed(registrar):
    token, plaintext = ApiToken.issue(user=registrar)
    assert plaintext not in token.token_hash
    assert len(token.token_hash) == 64
    assert ApiToken.objects.for_plaintext(plaintext).get() == token


def test_the_admin_records_manual_events_by_the_admin_user(client, course, make_user):
    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    url = reverse("admin:course_audit_course_change", args=[course.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {key: ("" if value is None else value) for key, value in data.items()}
    data.update(name="Renamed in admin", is_public="on")
    data.pop("start_at", None)
    data.pop("conclude_at", None)
    data.update({"start_at_0": "", "start_at_1": "", "conclude_at_0": "", "conclude_at_1": ""})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = last_event(course)
    assert event.event_type == "updated"
    assert event.event_source == "manual"
    assert event.user == admin_user
    assert event.event_data == {
        "name": ["Biology 101", "Renamed in admin"],
        "is_public": [False, True],
    }
    page_view = PageView.objects.get(pk=event.page_view_id)
    assert page_view.action == "course_audit_course_change"


def test_the_admin_delete_action_soft_deletes_and_records(client, course, make_user):
    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:course_audit_course_changelist"),
        {"action": "soft_delete", "_selected_action": [course.pk]},
    )
    assert response.status_code == 302
    assert Course.objects.get(pk=course.pk).workflow_state == "deleted"
    event = last_event(course)
    assert (event.event_type, event.event_source, event.user) == ("deleted", "manual", admin_user)


def test_course_events_are_read_only_in_the_admin(client, course, make_user):
    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    event = last_event(course)
    assert client.get(reverse("admin:course_audit_courseevent_add")).status_code == 403
    assert (
        client.get(reverse("admin:course_audit_courseevent_delete", args=[event.pk])).status_code
        == 403
    )
    detail = client.get(reverse("admin:course_audit_courseevent_change", args=[event.pk]))
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert (
        client.post(
            reverse("admin:course_audit_courseevent_change", args=[event.pk]), {}
        ).status_code
        == 403
    )
    assert CourseEvent.objects.get(pk=event.pk).event_data == event.event_data


def test_a_script_attributes_with_the_context_manager(course, registrar):
    with audit_context(user=registrar, source="api"):
        services.course_publish(course=course)
    event = last_event(course)
    assert (event.event_type, event.event_source, event.user) == ("published", "api", registrar)
    assert event.page_view_id is None


def test_without_a_context_events_are_manual_and_unattributed(course):
    services.course_conclude(course=course)
    event = last_event(course)
    assert (event.event_source, event.user, event.user_name) == ("manual", None, "")


def test_the_user_argument_of_a_service_wins(course, registrar, make_user):
    other = make_user("other")
    with audit_context(user=other):
        services.course_publish(course=course, user=registrar)
    assert last_event(course).user == registrar


def test_a_bad_source_is_refused():
    with pytest.raises(ValueError), audit_context(source="telepathy"):
        pass


def test_contexts_do_not_leak_between_threads(registrar):
    seen: list[object] = []
    with audit_context(user=registrar, request_id=uuid.uuid4()):
        thread = threading.Thread(target=lambda: seen.append(get_audit_context().actor()))
        thread.start()
        thread.join()
        assert get_audit_context().actor() == registrar
    assert seen == [None]
    assert get_audit_context().actor() is None


def test_deleting_a_user_keeps_their_events_and_name(course, registrar):
    services.course_publish(course=course, user=registrar)
    name = _display(registrar)
    registrar_pk = registrar.pk
    registrar.delete()
    event = last_event(course)
    assert event.event_type == "published"
    # Events never change: the event keeps the id of whoever acted, and their name.
    assert event.user_id == registrar_pk
    assert event.user_name == name


def _display(user) -> str:
    full_name = getattr(user, "get_full_name", lambda: "")()
    return full_name or user.get_username()


def test_a_backfill_stamps_events_and_new_courses_at_the_given_time(department):
    import datetime as dt

    then = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)
    with audit_context(occurred_at=then):
        course = services.course_create(account=department, name="Imported history")
        [bulk] = Course.objects.bulk_create([Course(account=department, name="Bulk history")])
    for target in (course, bulk):
        assert Course.objects.get(pk=target.pk).created_at == then
        assert events_of(target)[0].created_at == then
