"""The authorization matrix (issue #6, item 1): every surface course_audit serves, by every
kind of caller, on objects inside and outside the caller's reach.

Each cell asserts the exact status (and, on the API, the contract's exact error body and
``WWW-Authenticate``; on the pages and the admin, the exact login redirect), that no byte
of data the caller may not see (names, codes, SIS ids, ids, UUIDs, URLs of the other
tenant or department) is in the body or any header, that a refused request (and every
read) changed nothing, and that an allowed write changed what it should and recorded its
events, attributed to the caller and its request. The world, callers, surfaces and oracle
are in ``tests/matrix_fixtures.py``; the matrix's size is printed at the end of the run.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from course_audit.models import AccessRecord, Course, CourseEvent, ExportJob, PageView
from course_audit.urls import DEPRECATED_NAMES
from tests.matrix_fixtures import (
    ACCOUNTS,
    CALLERS,
    COURSES,
    FORM,
    KINDS,
    MARKERS,
    NEW_COURSE_NAME,
    RENAMED,
    SURFACES,
    CallerSpec,
    Cell,
    Expect,
    Request,
    World,
    cells,
    client_for,
    expect,
)

pytestmark = pytest.mark.django_db


def _counts() -> tuple[Any, ...]:
    """Courses (how many, the last change), events (how many, the last id) and page views
    (how many), in one query: a read changes none of them."""
    tables = {
        name: connection.ops.quote_name(model._meta.db_table)
        for name, model in (("course", Course), ("event", CourseEvent), ("view", PageView))
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {tables['course']}),"
            f" (SELECT MAX(updated_at) FROM {tables['course']}),"
            f" (SELECT COUNT(*) FROM {tables['event']}),"
            f" (SELECT MAX(id) FROM {tables['event']}),"
            f" (SELECT COUNT(*) FROM {tables['view']})"
        )
        row = cursor.fetchone()
    return tuple(row)


def _course_rows() -> list[tuple[Any, ...]]:
    return list(
        Course.objects.order_by("pk").values_list(
            "pk",
            "name",
            "course_code",
            "sis_course_id",
            "account_id",
            "workflow_state",
            "updated_at",
        )
    )


def _send(client: Client, headers: dict[str, str], request: Request) -> Any:
    path = request.path + (f"?{urlencode(request.query)}" if request.query else "")
    send = getattr(client, request.method)
    if request.body is not None:
        return send(path, request.body, content_type=FORM, **headers)
    return send(path, **headers)


def _content(response: Any) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _assert_no_foreign_data(
    world: World, response: Any, content: str, expected: Expect, cell: Cell
) -> None:
    """Nothing of a data group the caller may not see, in the body or any header (the
    Location of a redirect is checked exactly instead: it echoes the requested path)."""
    visible = expected.visible if expected.status == 200 else frozenset()
    headers = "\n".join(
        f"{name}: {value}"
        for name, value in response.items()
        if not (expected.location is not None and name.lower() == "location")
    )
    text = f"{headers}\n{content}".lower()
    for group in set(MARKERS) - visible:
        leaked = sorted(s for s in world.strings[group] if s.lower() in text)
        assert not leaked, f"{cell}: {group} data in the answer: {leaked}"


def _assert_listing(body: dict[str, Any], expected: Expect) -> None:
    """An audit listing holds the events of exactly the courses it should, and links
    only those courses."""
    assert expected.listed is not None
    listed = {str(pk) for pk in expected.listed}
    assert {event["links"]["course"] for event in body["events"]} == listed
    assert {course["id"] for course in body["linked"]["courses"]} == listed


def _assert_effect(
    world: World,
    caller: CallerSpec,
    expected: Expect,
    response: Any,
    counts: tuple[Any, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """An allowed write changed what it should, and each of its events is the caller's,
    from the API, linked to this request's page view."""
    assert expected.effect is not None and caller.kind is not None
    action, key, other = expected.effect
    user = world.users[caller.kind]
    body = response.json()
    new_events = list(CourseEvent.objects.filter(pk__gt=counts[3] or 0).order_by("pk"))
    request_id = response["X-Request-Id"]
    for event in new_events:
        assert event.event_source == CourseEvent.EventSource.API
        assert event.user_id == user.pk
        assert str(event.page_view_id) == request_id
    assert PageView.objects.filter(pk=request_id, user_id=user.pk).exists()
    recorded = sorted((event.course_id, event.event_type) for event in new_events)
    if action == "create":
        assert key is not None
        course = Course.objects.get(pk=body["id"])
        assert (course.name, course.account_id) == (NEW_COURSE_NAME, ACCOUNTS[key].pk)
        assert recorded == [(course.pk, "created")]
        return
    assert key is not None
    spec = COURSES[key]
    course = Course.objects.get(pk=spec.pk)
    if action == "rename":
        assert body["name"] == course.name == RENAMED
        assert recorded == [(spec.pk, "updated")]
        assert new_events[0].event_data == {"name": [spec.name, RENAMED]}
    elif action in ("delete", "conclude"):
        assert body == {action: True}
        assert course.workflow_state == ("deleted" if action == "delete" else "completed")
        assert recorded == [(spec.pk, "deleted" if action == "delete" else "concluded")]
    elif action == "reset":
        new = Course.objects.get(pk=body["id"])
        assert new.pk != spec.pk and (new.name, new.sis_course_id) == (spec.name, spec.sis)
        assert course.workflow_state == "deleted"
        assert recorded == sorted(
            [(new.pk, "created"), (new.pk, "reset_from"), (spec.pk, "reset_to")]
        )
    else:
        assert action == "copy" and other is not None
        assert body["workflow_state"] == "completed"
        assert recorded == sorted([(spec.pk, "copied_from"), (COURSES[other].pk, "copied_to")])
    # Nothing but the targets changed.
    touched = {spec.pk, *((COURSES[other].pk,) if other else ())}
    existing = {row[0] for row in rows}
    after = [row for row in _course_rows() if row[0] in existing and row[0] not in touched]
    assert after == [row for row in rows if row[0] not in touched]


# The surfaces that read audit data: each answer of theirs that shows it (a 200) writes
# access records of the caller (course_audit.access_log), one, or for the admin's lists one
# per tenant shown; every other answer writes none.
RECORDED_READS = {
    "api.audit_course",
    "api.audit_account",
    "api.audit_account_subaccounts",
    "api.event_proof",
    "page.course_history",
    "page.course_export_csv",
    "page.course_export_jsonl",
    "page.account_history",
    "page.account_history_subaccounts",
    "page.account_verify",
    "page.account_verify_subaccounts",
    "page.account_export_csv",
    "page.account_export_jsonl",
    "page.account_export_subaccounts",
    "page.page_view",
    "page.access_log",
    "page.person_history",
    "page.person_export_csv",
    "page.sis_batch_history",
    "page.sis_batch_export",
    "page.export_job_download",
    "page.course_as_of",
    "page.course_as_of_compared",
    "api.course_as_of",
    "admin.courseevent_changelist",
    "admin.courseevent_changelist_search",
    "admin.courseevent_change",
    "admin.accessrecord_changelist",
    "admin.accessrecord_change",
}
# The home page records its recent activity when it shows some (one record per tenant).
RECORDED_IF_SHOWN = {"page.home"}
# One record per tenant whose events the answer showed.
PER_TENANT = {"page.home", "page.person_history"}


def _last_access_record() -> int:
    return AccessRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _assert_access_records(
    world: World, cell: Cell, caller: CallerSpec, expected: Expect, after_id: int
) -> None:
    records = list(AccessRecord.objects.filter(id__gt=after_id))
    shows_events = caller.kind is not None and bool(KINDS[caller.kind].view)
    recorded = cell.surface in RECORDED_READS or (
        cell.surface in RECORDED_IF_SHOWN and shows_events
    )
    if expected.status != 200 or not recorded:
        assert records == [], f"{cell}: recorded a read that showed nothing"
        return
    assert caller.kind is not None
    assert records, f"{cell}: a read of audit data left no access record"
    if cell.surface.startswith("page.") and cell.surface not in PER_TENANT:
        assert len(records) == 1, f"{cell}: {records}"
    if cell.surface.startswith("api."):
        assert len(records) == 1, f"{cell}: {records}"
    assert {record.user_id for record in records} == {world.users[caller.kind].pk}


@pytest.fixture(scope="module")
def baseline(matrix_world: World) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The world's counts and course rows: what every cell starts from, since each runs in
    a savepoint rolled back after it."""
    return _counts(), _course_rows()


@pytest.mark.parametrize("cell", cells(), ids=str)
def test_cell(matrix_world: World, baseline: tuple[Any, ...], cell: Cell) -> None:
    surface = SURFACES[cell.surface]
    caller = CALLERS[cell.caller]
    request = surface.request(matrix_world, cell.target)
    expected = expect(matrix_world, surface, caller, cell.target, request)
    client, headers = client_for(matrix_world, caller)
    writes = request.method != "get"
    counts, rows = baseline

    jobs = ExportJob.objects.count()
    last_record = _last_access_record()
    response = _send(client, headers, request)
    content = _content(response)

    assert response.status_code == expected.status, f"{cell}: {content[:300]}"
    if expected.status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="course_audit"'
    if expected.body is not None:
        assert response["Content-Type"] == "application/json"
        assert json.loads(content) == expected.body
    if expected.location is not None:
        assert response["Location"] == expected.location
    if caller.via != "session":
        # Nobody logged in: nothing may be stored for them, not even a session.
        assert settings.SESSION_COOKIE_NAME not in response.cookies, f"{cell}: made a session"
    _assert_no_foreign_data(matrix_world, response, content, expected, cell)
    for text in expected.must_show:
        assert text in content, f"{cell}: {text!r} not shown"
    for text in expected.must_hide:
        assert text not in content, f"{cell}: {text!r} shown"
    assert ExportJob.objects.count() == jobs + expected.jobs_added, f"{cell}: jobs queued"
    if expected.status == 200 and cell.surface.startswith("api.audit_"):
        _assert_listing(json.loads(content), expected)
    _assert_access_records(matrix_world, cell, caller, expected, last_record)
    if expected.effect is not None:
        _assert_effect(matrix_world, caller, expected, response, counts, rows)
    else:
        assert _counts() == counts, f"{cell}: changed or recorded something"
        if writes:
            assert _course_rows() == rows, f"{cell}: changed a course"


def test_revoked_callers_were_allowed_a_moment_before(matrix_world: World) -> None:
    # Their cells (404 and 403 everywhere) mean something only if the grant worked first.
    assert matrix_world.before_revocation == {
        "revoked_membership": (200, 200),
        "revoked_override": (200, 200),
        "deactivated": (200, 200),
    }


def test_a_request_across_tenants_leaves_a_page_view_of_no_tenant(matrix_world: World) -> None:
    # The superuser's bulk soft delete of bio303 and rival3 (build_world): both tenants'
    # events link its page view, which therefore names neither's course nor account.
    events = CourseEvent.objects.filter(
        course_id__in=[COURSES["bio303"].pk, COURSES["rival3"].pk], event_type="deleted"
    )
    assert len({event.page_view_id for event in events}) == 1 and len(events) == 2
    view = PageView.objects.get(pk=events[0].page_view_id)
    assert (view.account_id, view.context_type, view.context_id) == (None, "", None)
    assert view.url == "http://testserver/admin/course_audit/course/"
    assert view.user_id == matrix_world.users["superuser"].pk


# --- the guard: every route course_audit serves is in the matrix ---------------------------


def _served_routes(patterns: list[Any], namespace: str = "") -> set[tuple[str, str]]:
    """(URL name, method) of everything ``course_audit.urls`` serves; "*" for a function
    view (its methods are not declared where they can be read)."""
    routes: set[tuple[str, str]] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            prefix = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            routes |= _served_routes(pattern.url_patterns, prefix)
            continue
        assert isinstance(pattern, URLPattern)
        name = f"{namespace}{pattern.name}"
        callback = pattern.callback
        actions = getattr(callback, "actions", None)
        view_class = getattr(callback, "cls", None)
        if actions:
            # DRF answers HEAD with the GET action: the GET cells cover it.
            routes |= {(name, method.upper()) for method in actions if method != "head"}
        elif view_class is not None:
            routes |= {
                (name, method.upper())
                for method in view_class.http_method_names
                if method not in ("options", "head") and hasattr(view_class, method)
            }
        else:
            routes.add((name, "*"))
    return routes


def test_every_route_is_in_the_matrix() -> None:
    # A deprecated flat name is its namespaced page again (tests/test_urls.py).
    served = {
        (DEPRECATED_NAMES.get(name, name), method)
        for name, method in _served_routes(get_resolver("course_audit.urls").url_patterns)
    }
    covered = {surface.route for surface in SURFACES.values()}
    covered_names = {name for name, _ in covered}
    missing = {
        (name, method)
        for name, method in served
        if (name, method) not in covered and not (method == "*" and name in covered_names)
    }
    assert not missing, f"not in the authorization matrix: {sorted(missing)}"
    # Both of Canvas's DELETE events, and the account listing with its subtree.
    assert {"api.delete_course", "api.conclude_course", "api.audit_account_subaccounts"} <= set(
        SURFACES
    )


def test_every_admin_changelist_and_change_page_of_the_app_is_in_the_matrix() -> None:
    models = {
        model._meta.model_name
        for model in admin.site._registry
        if model._meta.app_label == "course_audit"
    }
    covered = {surface.route[0] for surface in SURFACES.values() if surface.family == "admin"}
    changelists = {f"admin:course_audit_{model}_changelist" for model in models}
    assert changelists <= covered, sorted(changelists - covered)
    # The checkpoints and prune notes have no row in the matrix's world (ADMIN_ROW_MODELS).
    rowless = {"checkpoint", "prunenote"}
    change_pages = {f"admin:course_audit_{model}_change" for model in models - rowless}
    assert change_pages <= covered, sorted(change_pages - covered)
    assert {
        "admin:course_audit_course_history",
        "admin:course_audit_accountmembership_delete",
        "admin:course_audit_accountmembership_add",
        "admin:autocomplete",
    } <= covered
