"""Input hygiene (issue #6, item 5): bodies and parameters over sane sizes are refused
cleanly and cheaply, unknown parameters change nothing, and every error the API can give
is JSON in the contract's form.

The limits: a body over Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 (refused on its
declared length, before it is read), more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields a
400; a listing's parameter over ``filters.MAX_PARAMETER_LENGTH`` characters a 400 naming
it, a search over ``SEARCH_MAX_LENGTH`` characters a 400 page.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from course_audit import views
from course_audit.filters import MAX_PARAMETER_LENGTH
from course_audit.models import Course, CourseEvent
from course_audit.querysets import SEARCH_MAX_LENGTH
from tests.api_fixtures import ApiCaller
from tests.helpers import NOT_FOUND

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
EVENTS_TABLE = CourseEvent._meta.db_table


def errors(*messages: str) -> dict[str, Any]:
    return {"errors": [{"message": message} for message in messages]}


def json_error(response: Any, status: int) -> dict[str, Any]:
    """The response's body, after checking it is the contract's JSON error with ``status``."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert set(data) <= {"status", "errors"}
    assert data["errors"] and all(set(error) == {"message"} for error in data["errors"])
    return data


@pytest.fixture
def registrar(caller, root_account, admin_role) -> ApiCaller:
    return caller("registrar", (root_account, admin_role))


@pytest.fixture
def history(course: Course, add_events) -> Course:
    add_events(course, 15, when=T0, step=dt.timedelta(hours=1))
    return course


def course_state(course: Course) -> tuple[Any, ...]:
    course.refresh_from_db()
    return (course.name, course.course_code, CourseEvent.objects.filter(course=course).count())


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_a_body_over_the_upload_limit_is_413_naming_the_limit(registrar, course, settings, as_json):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = course_state(course)
    fields = {"course[name]": "x" * 20_000}
    if as_json:
        data, content_type = json.dumps({"course": {"name": "x" * 20_000}}), JSON
    else:
        data, content_type = urlencode(fields), FORM
    response = registrar.send(
        "put", f"/api/v1/courses/{course.pk}", data, content_type=content_type
    )
    assert json_error(response, 413) == errors("The request body is larger than 10000 bytes.")
    assert course_state(course) == before


def test_a_body_is_refused_on_its_declared_length_before_it_is_read(registrar, course, settings):
    """The declared length alone decides: the handler reads no byte of the body (the test
    client's payload would fail loudly if more were read than it holds)."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = course_state(course)
    response = registrar.send(
        "put",
        f"/api/v1/courses/{course.pk}",
        json.dumps({"course": {"name": "Small"}}),
        content_type=JSON,
        CONTENT_LENGTH="50000000",
    )
    assert json_error(response, 413) == errors("The request body is larger than 1000 bytes.")
    assert course_state(course) == before


def test_a_multipart_body_over_the_limit_is_413_before_its_files_are_spooled(
    registrar, department, settings
):
    """Django's multipart parser bounds only the fields: a file part would be written to a
    temporary file first. The API takes no file, so the whole body is bounded."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    upload = SimpleUploadedFile("big.bin", b"\0" * 50_000)
    response = registrar.client.post(
        f"/api/v1/accounts/{department.pk}/courses",
        {"course[name]": "New", "attachment": upload},
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
    )
    assert json_error(response, 413) == errors("The request body is larger than 10000 bytes.")
    assert not Course.objects.filter(name="New").exists()


def test_an_anonymous_oversized_body_is_still_401_first(client, course, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.put(
        f"/api/v1/courses/{course.pk}", json.dumps({"x": "y" * 5000}), content_type=JSON
    )
    assert json_error(response, 401)["status"] == "unauthenticated"


def test_the_default_limit_is_djangos(registrar, course):
    """No setting of the app's own: Django's 2.5 MB, which DRF's parsers apply too."""
    big = json.dumps({"course": {"name": "x" * (3 * 1024 * 1024)}})
    response = registrar.send("put", f"/api/v1/courses/{course.pk}", big, content_type=JSON)
    assert json_error(response, 413) == errors("The request body is larger than 2621440 bytes.")


def test_a_chunked_body_is_411_not_a_silent_no_op(registrar, course):
    """A WSGI server hands Django a chunked body (no Content-Length) as an empty one: the
    write would answer 200 having read none of its fields."""
    before = course_state(course)
    response = registrar.send(
        "put",
        f"/api/v1/courses/{course.pk}",
        "",
        content_type=JSON,
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert json_error(response, 411) == errors(
        "A request body needs a Content-Length header; a chunked body is not read."
    )
    assert course_state(course) == before
    # A read with the header is left alone.
    read = registrar.client.get(
        f"/api/v1/courses/{course.pk}",
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert read.status_code == 200


def test_too_many_form_fields_is_a_json_400(registrar, course, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
    before = course_state(course)
    data = "&".join(f"field{index}=1" for index in range(150)) + "&course[name]=Renamed"
    response = registrar.send("put", f"/api/v1/courses/{course.pk}", data, content_type=FORM)
    assert json_error(response, 400) == errors("The request has more than 100 fields.")
    assert course_state(course) == before


def test_too_many_files_is_a_json_400(registrar, department, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = {f"file{index}": SimpleUploadedFile(f"{index}.txt", b"x") for index in range(3)}
    response = registrar.client.post(
        f"/api/v1/accounts/{department.pk}/courses",
        {"course[name]": "New", **files},
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
    )
    assert json_error(response, 400) == errors("The request has more than 2 files.")
    assert not Course.objects.filter(name="New").exists()


# --- every error the API gives is JSON ----------------------------------------------------


def test_malformed_json_is_a_400_naming_the_parse_error(registrar, course):
    response = registrar.send("put", f"/api/v1/courses/{course.pk}", "{bad", content_type=JSON)
    [error] = json_error(response, 400)["errors"]
    assert error["message"].startswith("JSON parse error")


def test_an_unsupported_media_type_is_415(registrar, course):
    response = registrar.send("put", f"/api/v1/courses/{course.pk}", "x", content_type="text/plain")
    assert json_error(response, 415) == errors('Unsupported media type "text/plain" in request.')


def test_a_wrong_method_is_405_with_allow(registrar, course):
    response = registrar.send("patch", f"/api/v1/courses/{course.pk}", "{}", content_type=JSON)
    assert json_error(response, 405) == errors('Method "PATCH" not allowed.')
    assert set(response["Allow"].split(", ")) >= {"GET", "PUT", "DELETE"}


def test_an_unsatisfiable_accept_is_406_in_json(registrar, course):
    response = registrar.client.get(
        f"/api/v1/audit/course/courses/{course.pk}",
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
        HTTP_ACCEPT="text/html",
    )
    assert json_error(response, 406) == errors("Could not satisfy the request Accept header.")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing/here",
        "/api/v1/",
        "/api/v1/audit/course/courses/",
        "/api/v1/audit/course/users/1",
        "/api/v1/courses/1/enrollments",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_path_under_the_api_is_the_contracts_404(client, registrar, path, method):
    """Not the host's HTML page: a client of the API reads the error as it reads any other.
    A path says nothing of anyone's data, so anonymous callers get it too."""
    anonymous = getattr(client, method)(path)
    assert json_error(anonymous, 404) == NOT_FOUND
    authenticated = registrar.send(method, path)
    assert json_error(authenticated, 404) == NOT_FOUND


def test_an_unknown_path_elsewhere_is_left_to_the_host(client):
    response = client.get("/api/v2/anything")
    assert response.status_code == 404
    assert "application/json" not in response["Content-Type"]


# --- query parameters ----------------------------------------------------------------------

HUGE = 100_000


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("start_time", "2" * HUGE),
        ("end_time", "2025-01-01T00:00:00" + "0" * HUGE),
        ("per_page", "9" * HUGE),
        ("page", "x" * HUGE),
        ("user_id", "9" * HUGE),
        ("event_type", ",".join(["created"] * 10_000)),
        ("event_source", ",".join(["sis"] * 10_000)),
    ],
)
def test_an_oversized_parameter_is_a_400_naming_it_without_touching_the_events(
    registrar, history, param, value
):
    with CaptureQueriesContext(connection) as queries:
        response = registrar.get(f"/api/v1/audit/course/courses/{history.pk}", **{param: value})
    assert json_error(response, 400) == errors(
        f"{param}: is too long ({len(value)} characters; at most {MAX_PARAMETER_LENGTH})"
    )
    assert len(response.content) < 200  # the value is not echoed back
    assert not [query for query in queries if EVENTS_TABLE in query["sql"]]


def test_include_subaccounts_oversized_is_a_400(registrar, root_account):
    response = registrar.get(
        f"/api/v1/audit/course/accounts/{root_account.pk}", include_subaccounts="t" * HUGE
    )
    assert json_error(response, 400) == errors(
        f"include_subaccounts: is too long ({HUGE} characters; at most {MAX_PARAMETER_LENGTH})"
    )


def test_a_parameter_at_the_limit_is_read_as_usual(registrar, history):
    """The limit refuses nothing well-formed: a list of every type, repeated, still filters."""
    types = ",".join(["updated"] * (MAX_PARAMETER_LENGTH // len("updated,")))
    assert len(types) <= MAX_PARAMETER_LENGTH
    response = registrar.get(f"/api/v1/audit/course/courses/{history.pk}", event_type=types)
    assert response.status_code == 200
    assert {event["event_type"] for event in response.json()["events"]} == {"updated"}


@pytest.mark.parametrize(
    "raw_id",
    [
        "1" * 20_000,  # int() refuses it: this was a 500
        "9" * 20,
        "0" * 30 + "1" * 20,
    ],
)
def test_a_huge_numeric_id_is_404_not_500(registrar, raw_id):
    for path in (
        f"/api/v1/audit/course/courses/{raw_id}",
        f"/api/v1/courses/{raw_id}",
        f"/api/v1/accounts/{raw_id}",
        f"/api/v1/audit/course/accounts/{raw_id}",
    ):
        assert json_error(registrar.get(path), 404) == NOT_FOUND, path


def test_leading_zeros_still_name_the_course(registrar, course):
    response = registrar.get(f"/api/v1/courses/{'0' * 30}{course.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == course.pk


def test_a_5_kb_sis_id_is_a_plain_404(registrar):
    for path in (
        "/api/v1/courses/sis_course_id:" + "x" * 5000,
        "/api/v1/audit/course/accounts/sis_account_id:" + "y" * 5000,
    ):
        assert json_error(registrar.get(path), 404) == NOT_FOUND


def test_a_very_long_url_is_a_plain_404(registrar):
    response = registrar.get("/api/v1/audit/course/courses/" + "a/" * 20_000)
    assert json_error(response, 404) == NOT_FOUND


# --- unknown parameters are ignored --------------------------------------------------------

UNKNOWN = {
    "sort": "created_at",
    "order": "asc",
    "limit": "1",
    "offset": "5",
    "include[]": "everything",
    "as_user_id": "1",
    "x" * 200: "y" * 200,
}


def listing(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content[:300]
    data = response.json()
    return {"events": data["events"], "linked": data["linked"], "links": data["links"]}


def test_unknown_parameters_do_not_change_a_listing(registrar, history):
    path = f"/api/v1/audit/course/courses/{history.pk}"
    plain = registrar.get(path, per_page=5)
    noisy = registrar.get(path, per_page=5, **UNKNOWN)
    assert listing(noisy) == listing(plain)
    assert len(listing(plain)["events"]) == 5
    # The next page too: the unknown parameters ride along in the Link header, harmlessly.
    next_url = noisy["Link"].split(",")[1].split(";")[0].strip("<>")
    assert "offset=5" in next_url
    plain_next = plain["Link"].split(",")[1].split(";")[0].strip("<>")
    assert listing(
        registrar.client.get(next_url, HTTP_AUTHORIZATION=f"Bearer {registrar.token}")
    ) == listing(registrar.client.get(plain_next, HTTP_AUTHORIZATION=f"Bearer {registrar.token}"))


def test_unknown_parameters_do_not_change_a_course_or_an_account(registrar, course):
    for path in (f"/api/v1/courses/{course.pk}", f"/api/v1/accounts/{course.account_id}"):
        plain = registrar.get(path)
        assert plain.status_code == 200
        assert registrar.get(path, **UNKNOWN).json() == plain.json()


def test_unknown_fields_in_a_write_are_ignored(registrar, make_course):
    first, second = make_course(name="First"), make_course(name="Second")
    base = {"course[name]": "Renamed"}
    extra = {"course[owner]": "mallory", "course[id]": "999", "course[account_id]": "1", "x": "y"}
    plain = registrar.send("put", f"/api/v1/courses/{first.pk}", urlencode(base), content_type=FORM)
    noisy = registrar.send(
        "put", f"/api/v1/courses/{second.pk}", urlencode({**base, **extra}), content_type=FORM
    )
    assert plain.status_code == noisy.status_code == 200
    ignored = {"id", "uuid", "created_at", "sis_course_id", "course_code"}
    assert {k: v for k, v in noisy.json().items() if k not in ignored} == {
        k: v for k, v in plain.json().items() if k not in ignored
    }
    second.refresh_from_db()
    assert (second.pk, second.account_id) == (noisy.json()["id"], first.account_id)
    [event] = CourseEvent.objects.filter(course=second, event_type="updated")
    assert event.event_data == {"name": ["Second", "Renamed"]}


# --- pages -----------------------------------------------------------------------------------


def page_events(response: Any) -> list[Any]:
    return [shown["event"].pk for shown in response.context["events"]]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("start_time", "2" * HUGE),
        ("end_time", "1" * HUGE),
        ("user_id", "9" * HUGE),
        ("event_type", "created," * 10_000),
    ],
)
def test_an_oversized_filter_on_a_history_page_is_a_400_page(
    registrar_browser, history, param, value
):
    url = reverse("course_audit:course_history", args=[history.pk])
    with CaptureQueriesContext(connection) as queries:
        response = registrar_browser.get(url, {param: value})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "is too long" in response.content.decode()
    assert not [query for query in queries if EVENTS_TABLE in query["sql"]]


@pytest.mark.parametrize("param", ["after", "before"])
def test_an_oversized_page_link_on_a_history_page_is_a_400_page(registrar_browser, history, param):
    url = reverse("course_audit:course_history", args=[history.pk])
    response = registrar_browser.get(url, {param: "x" * HUGE})
    assert response.status_code == 400
    assert "This page link is out of date" in response.content.decode()


def test_an_oversized_per_page_on_a_history_page_is_the_default(registrar_browser, history):
    url = reverse("course_audit:course_history", args=[history.pk])
    response = registrar_browser.get(url, {"per_page": "9" * HUGE})
    assert response.status_code == 200
    assert response.context["per_page"] == views.PER_PAGE


def test_an_oversized_export_filter_is_a_400(registrar_browser, history):
    url = reverse("course_audit:course_export", args=[history.pk])
    response = registrar_browser.get(url, {"format": "csv", "start_time": "2" * HUGE})
    assert response.status_code == 400
    assert f"is too long ({HUGE} characters; at most {MAX_PARAMETER_LENGTH})" in (
        response.content.decode()
    )


def test_an_oversized_search_is_a_400_page_without_a_search(registrar_browser, course):
    with CaptureQueriesContext(connection) as queries:
        response = registrar_browser.get(reverse("course_audit:home"), {"q": "x" * HUGE})
    assert response.status_code == 400
    text = response.content.decode()
    assert f"The search text is too long ({HUGE} characters; at most 255)." in text
    assert "x" * 300 not in text
    assert not [query for query in queries if Course._meta.db_table + '"."name' in query["sql"]]


def test_a_search_at_the_limit_still_searches(registrar_browser, make_course):
    name = "N" * SEARCH_MAX_LENGTH
    make_course(name=name)
    response = registrar_browser.get(reverse("course_audit:home"), {"q": name})
    assert response.status_code == 200
    assert [course.name for course in response.context["courses"]] == [name]


def test_unknown_parameters_do_not_change_a_history_page(registrar_browser, history):
    url = reverse("course_audit:course_history", args=[history.pk])
    plain = registrar_browser.get(url, {"per_page": "10"})
    noisy = registrar_browser.get(url, {"per_page": "10", **UNKNOWN})
    assert plain.status_code == noisy.status_code == 200
    assert page_events(noisy) == page_events(plain)
    assert len(page_events(plain)) == 10
    assert noisy.context["chart"] == plain.context["chart"]


def test_unknown_parameters_do_not_change_the_home_page(registrar_browser, course):
    url = reverse("course_audit:home")
    plain = registrar_browser.get(url, {"q": "Bio"})
    noisy = registrar_browser.get(url, {"q": "Bio", **UNKNOWN})
    assert plain.status_code == noisy.status_code == 200
    assert list(noisy.context["courses"]) == list(plain.context["courses"]) == [course]
    assert noisy.context["tree"] == plain.context["tree"]


def test_an_oversized_admin_search_finds_nothing_without_searching(make_user, course):
    """The event changelist's search looks up courses and users first; a term longer than
    any name cannot match one, so it is not looked up."""
    user = make_user("admin", is_staff=True, is_superuser=True)
    admin_browser = Client()
    admin_browser.force_login(user)
    url = reverse("admin:course_audit_courseevent_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = admin_browser.get(url, {"q": "B" * HUGE})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert not [query for query in queries if "LIKE" in query["sql"].upper()]
    found = admin_browser.get(url, {"q": "Biology"})
    assert [event.course_id for event in found.context["cl"].result_list] == [course.pk]
