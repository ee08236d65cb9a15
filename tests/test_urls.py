"""The app's URL names: the pages in the ``course_audit`` namespace, the API in
``course_audit_api``, and the pages' deprecated flat names (``course_audit_home``), which
still reverse to the same paths."""

from __future__ import annotations

import uuid

import pytest
from django.urls import NoReverseMatch, include, path, resolve, reverse

from course_audit.urls import DEPRECATED_NAMES

# A host that mounts the app under a prefix.
urlpatterns = [path("registrar/", include("course_audit.urls"))]

REQUEST_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
ARGS: dict[str, list[object]] = {
    "home": [],
    "course_history": [7],
    "course_export": [7],
    "account_history": [3],
    "account_export": [3],
    "page_view": [REQUEST_ID],
    "set_timezone": [],
    "schema": [],
    "docs": [],
}


# Pages added after the namespace: no flat name.
NEW_ARGS: dict[str, list[object]] = {
    "course_as_of": [7],
    "person_history": [5],
    "person_export": [5],
}


def test_every_page_has_its_old_flat_name():
    assert {f"course_audit_{name}": f"course_audit:{name}" for name in ARGS} == DEPRECATED_NAMES


@pytest.mark.parametrize("name", NEW_ARGS)
def test_pages_added_since_have_no_flat_name(name):
    assert reverse(f"course_audit:{name}", args=NEW_ARGS[name]).startswith("/audit/")
    with pytest.raises(NoReverseMatch):
        reverse(f"course_audit_{name}", args=NEW_ARGS[name])


@pytest.mark.parametrize("urlconf", ["auditlog_project.urls", __name__])
@pytest.mark.parametrize("name", ARGS)
def test_the_old_and_new_names_reverse_to_the_same_path(urlconf, name):
    new = reverse(f"course_audit:{name}", args=ARGS[name], urlconf=urlconf)
    old = reverse(f"course_audit_{name}", args=ARGS[name], urlconf=urlconf)

    assert old == new
    prefix = "/registrar/" if urlconf == __name__ else "/"
    assert new.startswith(f"{prefix}api/" if name in ("schema", "docs") else f"{prefix}audit/")
    # A request resolves to the namespaced page: the old names only reverse.
    assert resolve(new, urlconf=urlconf).view_name == f"course_audit:{name}"


def test_the_api_keeps_its_own_namespace():
    assert reverse("course_audit_api:course", kwargs={"course_id": "7"}) == "/api/v1/courses/7"
    assert resolve("/api/v1/courses/7").view_name == "course_audit_api:course"
    assert resolve("/audit/").view_name == "course_audit:home"
