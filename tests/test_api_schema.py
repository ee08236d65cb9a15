"""The OpenAPI schema: valid, complete, and true to what the API really answers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
from django.db import OperationalError
from drf_spectacular.validation import validate_schema

from course_audit import services
from course_audit.models import Account, CourseEvent

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/v1/audit/course/courses/{course_id}": {"get"},
    "/api/v1/audit/course/courses/{course_id}/as_of": {"get"},
    "/api/v1/audit/course/accounts/{account_id}": {"get"},
    "/api/v1/audit/course/events/{event_uuid}/proof": {"get"},
    "/api/v1/courses/{course_id}": {"get", "put", "delete"},
    "/api/v1/accounts/{account_id}": {"get"},
    "/api/v1/accounts/{account_id}/courses": {"post"},
    "/api/v1/courses/{course_id}/reset_content": {"post"},
    "/api/v1/courses/{course_id}/content_migrations": {"post"},
}


@pytest.fixture
def schema(client) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def conforms(schema: dict[str, Any], path: str, method: str, response: Any) -> None:
    """Validate a real response body against the schema's declared response."""
    declared = schema["paths"][path][method]["responses"][str(response.status_code)]
    body_schema = declared["content"]["application/json"]["schema"]
    jsonschema.validate(
        response.json(),
        {**body_schema, "components": schema["components"]},
        cls=jsonschema.Draft202012Validator,
    )


def test_the_schema_is_valid_openapi_and_covers_every_endpoint(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.1")
    assert {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items()} == PATHS
    assert schema["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `manage.py create_api_token <username>`.",
    }
    listing = schema["paths"]["/api/v1/audit/course/accounts/{account_id}"]["get"]
    names = {parameter["name"] for parameter in listing["parameters"]}
    assert {
        "start_time",
        "end_time",
        "per_page",
        "page",
        "event_type",
        "event_source",
        "user_id",
        "include_subaccounts",
        "account_id",
    } <= names
    assert "Link" in listing["responses"]["200"]["headers"]


def test_the_docs_page_needs_no_internet(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'spec-url="/api/schema/"' in html
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in html
    assert "https://" not in html and "http://" not in html


def test_real_responses_conform(
    schema,
    caller,
    root_account,
    admin_role,
    teacher_role,
    other_root,
    course,
    make_course,
    department,
):
    registrar = caller("registrar", (root_account, admin_role))
    teacher = caller("teacher", (root_account, teacher_role))
    services.course_publish(course=course)
    services.course_copy(source=course)
    services.course_reset(course=course)
    audit = "/api/v1/audit/course/courses/{course_id}"
    conforms(schema, audit, "get", registrar.get(f"/api/v1/audit/course/courses/{course.pk}"))
    conforms(
        schema,
        "/api/v1/audit/course/accounts/{account_id}",
        "get",
        registrar.get(f"/api/v1/audit/course/accounts/{department.pk}"),
    )
    conforms(
        schema, "/api/v1/courses/{course_id}", "get", registrar.get(f"/api/v1/courses/{course.pk}")
    )
    conforms(
        schema,
        "/api/v1/accounts/{account_id}",
        "get",
        registrar.get(f"/api/v1/accounts/{department.pk}"),
    )
    for response in (
        registrar.get(f"/api/v1/audit/course/courses/{course.pk}", per_page="x"),
        teacher.get(f"/api/v1/audit/course/courses/{course.pk}"),
        registrar.get("/api/v1/audit/course/courses/999999"),
        registrar.client.get(f"/api/v1/audit/course/courses/{course.pk}"),
    ):
        assert response.status_code in (400, 401, 403, 404)
        conforms(schema, audit, "get", response)
    created = registrar.send(
        "post",
        f"/api/v1/accounts/{department.pk}/courses",
        {"course": {"name": "Schema 101"}},
        content_type="application/json",
    )
    conforms(schema, "/api/v1/accounts/{account_id}/courses", "post", created)
    target = created.json()["id"]
    updated = registrar.send(
        "put",
        f"/api/v1/courses/{target}",
        {"course": {"event": "offer"}},
        content_type="application/json",
    )
    conforms(schema, "/api/v1/courses/{course_id}", "put", updated)
    copied = registrar.send(
        "post",
        f"/api/v1/courses/{target}/content_migrations",
        {
            "migration_type": "course_copy_importer",
            "settings": {"source_course_id": str(make_course().pk)},
        },
        content_type="application/json",
    )
    conforms(schema, "/api/v1/courses/{course_id}/content_migrations", "post", copied)
    reset = registrar.send(
        "post", f"/api/v1/courses/{target}/reset_content", "", content_type="application/json"
    )
    conforms(schema, "/api/v1/courses/{course_id}/reset_content", "post", reset)
    deleted = registrar.send(
        "delete",
        f"/api/v1/courses/{reset.json()['id']}?event=delete",
        "",
        content_type="application/json",
    )
    conforms(schema, "/api/v1/courses/{course_id}", "delete", deleted)


def test_the_schema_ignores_the_hosts_default_schema_class(client, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "rest_framework.schemas.openapi.AutoSchema"}
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert set(response.json()["paths"]) == set(PATHS)


# Found by fuzzing from the schema (tests/test_fuzz_schema.py) -------------------------


def conforms_with_headers(schema: dict[str, Any], path: str, method: str, response: Any) -> None:
    """``conforms``, and every header the schema requires of that answer is present."""
    conforms(schema, path, method, response)
    declared = schema["paths"][path][method]["responses"][str(response.status_code)]
    for name, header in declared.get("headers", {}).items():
        assert not header.get("required") or response.has_header(name), name


def test_an_ambiguous_sis_id_on_a_get_is_a_documented_400(
    schema, caller, root_account, admin_role, teacher_role, other_root, department, make_course
):
    """A SIS id used in two of the caller's root accounts is a 400 on the GET endpoints
    too; the schema documented 200/401/403/404 only."""
    make_course(sis_course_id="SHARED-1")
    other_department = Account.objects.create(
        name="Rival Biology", parent=other_root, sis_account_id=department.sis_account_id
    )
    make_course(account=other_department, sis_course_id="SHARED-1")
    member_of_both = caller("both", (root_account, admin_role), (other_root, teacher_role))
    for path, url in (
        ("/api/v1/courses/{course_id}", "/api/v1/courses/sis_course_id:SHARED-1"),
        (
            "/api/v1/accounts/{account_id}",
            f"/api/v1/accounts/sis_account_id:{department.sis_account_id}",
        ),
    ):
        response = member_of_both.get(url)
        assert response.status_code == 400, response.content
        assert "several root accounts" in response.json()["errors"][0]["message"]
        conforms_with_headers(schema, path, "get", response)


def test_error_bodies_are_documented_with_their_real_shapes(schema):
    """401 and 403 carry their own ``status`` word (and 401 its WWW-Authenticate); 400,
    404 and 503 carry none; a Link header comes with a page of events only (not a proof)."""
    components = schema["components"]["schemas"]

    def body(response: dict[str, Any]) -> dict[str, Any]:
        ref = response["content"]["application/json"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[1]]

    def status_words(shape: dict[str, Any]) -> list[str]:
        status = shape["properties"]["status"]
        return components[status["$ref"].rsplit("/", 1)[1]]["enum"] if "$ref" in status else []

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"401", "403", "404", "503"} <= set(responses), (method, path)
            unauthenticated, unauthorized = body(responses["401"]), body(responses["403"])
            assert status_words(unauthenticated) == ["unauthenticated"]
            assert set(unauthenticated["required"]) == {"status", "errors"}
            assert status_words(unauthorized) == ["unauthorized"]
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
            assert responses["503"]["headers"]["Retry-After"]["required"] is True
            for code in ("400", "404", "503"):
                if code in responses:
                    assert set(body(responses[code])["properties"]) == {"errors"}, (path, code)
            for code, response in responses.items():
                assert ("Link" in response.get("headers", {})) == (
                    code == "200" and "/audit/" in path and not path.endswith(("/proof", "/as_of"))
                ), (method, path, code)


def test_real_error_answers_conform_with_their_headers(
    schema, caller, root_account, admin_role, teacher_role, course, monkeypatch
):
    registrar = caller("registrar", (root_account, admin_role))
    teacher = caller("teacher", (root_account, teacher_role))
    audit = "/api/v1/audit/course/courses/{course_id}"
    url = f"/api/v1/audit/course/courses/{course.pk}"
    unauthenticated = registrar.client.get(url)
    assert unauthenticated.status_code == 401
    assert unauthenticated["WWW-Authenticate"] == 'Bearer realm="course_audit"'
    for response in (unauthenticated, teacher.get(url), registrar.get(url, per_page="x")):
        conforms_with_headers(schema, audit, "get", response)

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("the server closed the connection unexpectedly")

    monkeypatch.setattr(services, "course_reset", unavailable)
    response = registrar.send(
        "post", f"/api/v1/courses/{course.pk}/reset_content", "", content_type="application/json"
    )
    assert response.status_code == 503
    conforms_with_headers(schema, "/api/v1/courses/{course_id}/reset_content", "post", response)


def test_listing_filters_document_the_values_the_api_accepts(schema):
    """``event_type`` and ``event_source`` are comma-separated lists of known values and
    ``user_id`` a positive 64-bit id: the schema said "any string" and "any integer", and
    the API answered 400 to what the schema allowed."""
    for path in (
        "/api/v1/audit/course/courses/{course_id}",
        "/api/v1/audit/course/accounts/{account_id}",
    ):
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        for name, values in (
            ("event_type", {choice.value for choice in CourseEvent.EventType}),
            ("event_source", {"manual", "api", "sis"}),
        ):
            parameter = parameters[name]
            assert parameter.get("style", "form") == "form"
            assert parameter["explode"] is False
            assert parameter["schema"]["type"] == "array"
            assert set(parameter["schema"]["items"]["enum"]) == values
        assert parameters["user_id"]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**63 - 1,
        }


FORM_BODIES = {
    "/api/v1/accounts/{account_id}/courses": "post",
    "/api/v1/courses/{course_id}": "put",
    "/api/v1/courses/{course_id}/content_migrations": "post",
}


def form_schema(schema: dict[str, Any], path: str, media_type: str) -> dict[str, Any]:
    body = schema["paths"][path][FORM_BODIES[path]]["requestBody"]["content"][media_type]
    return schema["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]


@pytest.mark.parametrize("media_type", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_form_bodies_are_documented_as_the_bracketed_keys_the_api_reads(
    schema, caller, root_account, admin_role, department, make_course, media_type
):
    """A nested object in a form body is, by OpenAPI's rules, sent as ``name=...`` (form)
    or a JSON part (multipart), which the API refused with 400; it reads ``course[name]``."""
    create = form_schema(schema, "/api/v1/accounts/{account_id}/courses", media_type)
    assert "course" not in create["properties"]
    assert create["required"] == ["course[name]"]
    assert {"course[name]", "course[sis_course_id]", "course[start_at]", "offer"} <= set(
        create["properties"]
    )
    # A form has no null: a blank value clears (course[start_at]=).
    assert create["properties"]["course[start_at]"] == {"type": "string", "format": "date-time"}
    update = form_schema(schema, "/api/v1/courses/{course_id}", media_type)
    assert "course[event]" in update["properties"] and "required" not in update
    copy = form_schema(schema, "/api/v1/courses/{course_id}/content_migrations", media_type)
    assert set(copy["required"]) == {"migration_type", "settings[source_course_id]"}

    registrar = caller("registrar", (root_account, admin_role))
    form = {
        "course[name]": "Form 101",
        "course[is_public]": "true",
        "course[start_at]": "",
        "offer": "true",
    }
    jsonschema.validate(
        {**form, "course[is_public]": True, "offer": True},
        create,
        cls=jsonschema.Draft202012Validator,
    )
    if media_type == "multipart/form-data":
        created = registrar.send("post", f"/api/v1/accounts/{department.pk}/courses", form)
    else:
        created = registrar.send(
            "post",
            f"/api/v1/accounts/{department.pk}/courses",
            urlencode(form),
            content_type=media_type,
        )
    assert created.status_code == 200, created.content
    assert (created.json()["name"], created.json()["workflow_state"]) == ("Form 101", "available")


def test_an_update_needs_no_name(schema, caller, root_account, admin_role, course):
    """An update changes only the fields it names; the schema required ``course.name``."""
    fields = schema["components"]["schemas"]["CourseUpdateFieldsRequest"]
    assert "name" not in fields.get("required", [])
    registrar = caller("registrar", (root_account, admin_role))
    response = registrar.send(
        "put",
        f"/api/v1/courses/{course.pk}",
        {"course": {"is_public": True}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["is_public"]) == ("Biology 101", True)


def body_writes(department: Account, course: Any) -> list[tuple[str, str, str]]:
    """The operations that read a body: (schema path, method, URL)."""
    return [
        (
            "/api/v1/accounts/{account_id}/courses",
            "post",
            f"/api/v1/accounts/{department.pk}/courses",
        ),
        ("/api/v1/courses/{course_id}", "put", f"/api/v1/courses/{course.pk}"),
        ("/api/v1/courses/{course_id}", "delete", f"/api/v1/courses/{course.pk}"),
        (
            "/api/v1/courses/{course_id}/content_migrations",
            "post",
            f"/api/v1/courses/{course.pk}/content_migrations",
        ),
    ]


def test_unsupported_media_and_accept_answers_are_documented(
    schema, caller, root_account, admin_role, department, course
):
    """A body in a media type the API does not read is a 415, and an ``Accept`` without
    JSON a 406, both in the contract's error form; the schema documented neither."""
    registrar = caller("registrar", (root_account, admin_role))
    for path, method, url in body_writes(department, course):
        response = registrar.send(method, url, "course[name]=x", content_type="text/plain")
        assert response.status_code == 415, (method, url, response.content)
        assert response.json() == {
            "errors": [{"message": 'Unsupported media type "text/plain" in request.'}]
        }
        conforms_with_headers(schema, path, method, response)
    response = registrar.client.get(
        f"/api/v1/courses/{course.pk}",
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 406
    for path, operations in schema["paths"].items():
        for method in operations:
            conforms_with_headers(schema, path, method, response)


def test_oversized_and_chunked_bodies_are_documented(
    schema, caller, root_account, admin_role, department, course, settings
):
    """A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 on any operation, and a chunked
    write body a 411 on those that read one; the schema documented neither."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    registrar = caller("registrar", (root_account, admin_role))
    big = json.dumps({"course": {"name": "x" * 5000}})
    for path, method, url in body_writes(department, course):
        response = registrar.send(method, url, big, content_type="application/json")
        assert response.status_code == 413, (method, url, response.content)
        conforms_with_headers(schema, path, method, response)
        response = registrar.send(
            method, url, "", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
        )
        assert response.status_code == 411, (method, url, response.content)
        conforms_with_headers(schema, path, method, response)
    response = registrar.client.generic(
        "GET",
        f"/api/v1/audit/course/courses/{course.pk}",
        big,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
    )
    assert response.status_code == 413
    conforms_with_headers(schema, "/api/v1/audit/course/courses/{course_id}", "get", response)
