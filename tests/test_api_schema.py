"""The OpenAPI schema: valid, complete, and true to what the API really answers."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from drf_spectacular.validation import validate_schema

from course_audit import services

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/v1/audit/course/courses/{course_id}": {"get"},
    "/api/v1/audit/course/accounts/{account_id}": {"get"},
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
