"""course_audit's API under the site's prefix, whatever the site's REST_FRAMEWORK says."""

from __future__ import annotations

import base64
import re
import zoneinfo
from datetime import datetime

import pytest
from course_audit.models import AccountMembership, ApiToken, Course, CourseEvent, Role
from django.conf import settings
from django.test import Client
from rest_framework.fields import DateTimeField

pytestmark = pytest.mark.django_db

OPEN = "rest_framework.permissions.AllowAny" in settings.REST_FRAMEWORK.get(
    "DEFAULT_PERMISSION_CLASSES", []
)
API = "/registrar/api/v1"
DENVER = zoneinfo.ZoneInfo("America/Denver")
LINK = re.compile(r'<([^>]+)>; rel="([a-z]+)"')
UNAUTHENTICATED = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def links(response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response["Link"])}


@pytest.fixture
def api_course(client, registrar_token, history_dept):
    """A course created through the API, form-encoded, as Canvas's clients send it."""
    response = client.post(
        f"{API}/accounts/{history_dept.pk}/courses",
        {"course[name]": "Medieval Europe", "course[course_code]": "HIST210", "offer": "true"},
        **bearer(registrar_token),
    )
    assert response.status_code == 200, response.content
    return Course.objects.get(pk=response.json()["id"])


def test_events_recorded_through_the_api_read_back_with_the_site_s_prefix(
    client, registrar, registrar_token, api_course
):
    first = client.get(
        f"{API}/audit/course/courses/{api_course.pk}", {"per_page": 1}, **bearer(registrar_token)
    )
    assert first.status_code == 200
    body = first.json()
    assert body["links"]["events.course"] == f"http://testserver{API}/courses/{{events.course}}"
    [event] = body["events"]
    assert event["event_type"] == "published"
    assert event["event_source"] == "api"
    assert event["links"]["user"] == str(registrar.pk)
    # The site's time zone, with its offset.
    stored = CourseEvent.objects.get(uuid=event["id"])
    expected = stored.created_at.astimezone(DENVER).replace(microsecond=0).isoformat()
    assert event["created_at"] == expected
    assert (
        datetime.fromisoformat(event["created_at"]).utcoffset()
        == stored.created_at.astimezone(DENVER).utcoffset()
    )

    pages = links(first)
    assert set(pages) == {"current", "next", "first"}
    for url in pages.values():
        assert url.startswith(f"http://testserver{API}/audit/course/courses/{api_course.pk}?")
    second = client.get(pages["next"], **bearer(registrar_token))
    assert second.status_code == 200
    assert [e["event_type"] for e in second.json()["events"]] == ["created"]
    assert set(links(second)) == {"current", "first", "last"}

    course_url = body["links"]["events.course"].replace("{events.course}", str(api_course.pk))
    course = client.get(course_url, **bearer(registrar_token))
    assert course.status_code == 200
    assert course.json()["name"] == "Medieval Europe"


def test_linked_users_are_rendered_by_the_site_s_serializer(
    client, registrar, registrar_token, api_course
):
    response = client.get(f"{API}/audit/course/courses/{api_course.pk}", **bearer(registrar_token))
    [user] = response.json()["linked"]["users"]
    assert user == {
        "id": str(registrar.pk),
        "name": "Rita Registrar",
        "sortable_name": "Rita Registrar",
        "short_name": "Rita",
        # The site's own DATETIME_FORMAT and time zone apply to its own serializer.
        "created_at": DateTimeField().to_representation(registrar.joined_on),
        "login_id": "rita.registrar@campus.example",
    }


def test_the_account_listing_and_its_links(client, registrar_token, api_course, campus):
    response = client.get(
        f"{API}/audit/course/accounts/sis_account_id:CAMPUS",
        {"include_subaccounts": "true", "per_page": 1},
        **bearer(registrar_token),
    )
    assert response.status_code == 200
    assert links(response)["next"].startswith(
        f"http://testserver{API}/audit/course/accounts/sis_account_id:CAMPUS?include_subaccounts=true&page="
    )


def test_nothing_is_served_anonymously(client, api_course, history_dept, make_member):
    root = make_member("root@campus.example", is_staff=True, is_superuser=True)
    basic = base64.b64encode(f"{root.email}:s3cret!".encode()).decode()
    paths = [
        f"{API}/audit/course/courses/{api_course.pk}",
        f"{API}/audit/course/accounts/{history_dept.pk}",
        f"{API}/courses/{api_course.pk}",
        f"{API}/accounts/{history_dept.pk}",
    ]
    for path in paths:
        for headers in ({}, {"HTTP_AUTHORIZATION": f"Basic {basic}"}):
            response = client.get(path, **headers)
            assert response.status_code == 401, (path, headers)
            assert response.json() == UNAUTHENTICATED  # the app's shape, not the site's
            assert response["WWW-Authenticate"] == 'Bearer realm="course_audit"'
    response = client.post(f"{API}/accounts/{history_dept.pk}/courses", {"course[name]": "x"})
    assert response.status_code == 401
    assert Course.objects.count() == 1


def test_members_see_only_what_their_roles_grant(api_course, make_member, campus):
    outsider = make_member()
    observer = make_member()
    AccountMembership.objects.create(
        user=observer, account=campus, role=Role.objects.create(name="Observer")
    )
    path = f"{API}/audit/course/courses/{api_course.pk}"
    for member, status in ((outsider, 404), (observer, 403)):
        token = ApiToken.issue(user=member)[1]
        assert Client().get(path, **bearer(token)).status_code == status
        browser = Client()
        browser.force_login(member)
        assert browser.get(path).status_code == status


def test_the_site_s_throttling_and_pagination_do_not_apply(client, registrar_token, api_course):
    path = f"{API}/audit/course/courses/{api_course.pk}"
    for _ in range(5):
        response = client.get(path, **bearer(registrar_token))
        assert response.status_code == 200
        assert len(response.json()["events"]) == 2


def test_answers_and_errors_keep_the_app_s_shape(client, registrar_token, api_course):
    path = f"{API}/audit/course/courses/{api_course.pk}"
    # JSON for a browser too, whatever renderers the site offers (the open variant has the
    # browsable API).
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get(path, HTTP_ACCEPT=browser_accept, **bearer(registrar_token))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    # Canvas's error shape, not the site's EXCEPTION_HANDLER's.
    response = client.get(path, {"start_time": "yesterday"}, **bearer(registrar_token))
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"].startswith("start_time: ")


def test_the_schema_and_docs_are_public_and_name_the_site_s_paths(client, registrar):
    schema = client.get("/registrar/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert f"{API}/audit/course/courses/{{course_id}}" in paths
    assert all(path.startswith(API) for path in paths)
    users = schema.json()["components"]["schemas"]["AuditUser"]["properties"]
    assert "login_id" in users
    docs = client.get("/registrar/api/docs/")
    assert docs.status_code == 200
    assert re.search(
        r'src="/assets/drf_spectacular_sidecar/redoc/bundles/redoc\.standalone\.[0-9a-f]{12}\.js"',
        docs.content.decode(),
    )


def test_the_site_s_own_api_follows_its_own_defaults(client, api_course):
    response = client.get("/campus-api/v2/courses/")
    if OPEN:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert set(response.json()) == {"error"}


def test_every_error_under_the_app_s_api_is_json(client, registrar_token, api_course, settings):
    # An unknown path under the app's API: its JSON 404, not the site's page nor, for an
    # anonymous caller, LoginRequiredMiddleware's redirect.
    for headers in ({}, bearer(registrar_token)):
        response = client.get(f"{API}/courses/{api_course.pk}/enrollments", **headers)
        assert response.status_code == 404
        [error] = response.json()["errors"]
        assert error == {"message": "The specified resource does not exist."}
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.put(
        f"{API}/courses/{api_course.pk}",
        '{"course": {"name": "' + "x" * 2000 + '"}}',
        content_type="application/json",
        **bearer(registrar_token),
    )
    assert response.status_code == 413
    [error] = response.json()["errors"]
    assert error == {"message": "The request body is larger than 1000 bytes."}
    docs = client.get("/registrar/api/docs/")
    assert "frame-ancestors 'none'" in docs["Content-Security-Policy"]
