"""The audit endpoints run a fixed number of queries, whatever the page size.

A page of 100 events linking users, page views, copied and reset courses and SIS batches
costs exactly what a page of one costs: the linked objects come from the events query's
joins, never from a query per event. The budget is at most six queries, counting
authentication honestly: a bearer token's first use within a minute writes its
``last_used_at`` (one UPDATE), a session costs the session and the user. Beyond the
budget, by name: the request's access record, one INSERT (``course_audit.access_log``),
which on PostgreSQL rides on the page's own statement when the page is one index range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from course_audit import services
from course_audit.context import audit_context
from course_audit.models import (
    AccessRecord,
    Account,
    ApiToken,
    Course,
    CourseEvent,
    PageView,
    SisBatch,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 12, 0, 0, tzinfo=dt.UTC)
BUDGET = 6
# The access record of the read: allowed by name, never out of the read budget.
ACCESS_RECORD_INSERTS = 1
ACCESS_RECORD_INSERT = 'INSERT INTO "course_audit_accessrecord"'
# The listings whose page is one index range: on PostgreSQL their record rides on the
# page's statement (``access_log.PageRecord``); the sub-accounts' page is read per account.
RIDES = {"course": True, "account": True, "subaccounts": False}


def record_writes(sql: list[str]) -> list[str]:
    """The statements that write the access record, alone or with the page."""
    return [query for query in sql if ACCESS_RECORD_INSERT in query]


def reads(sql: list[str]) -> int:
    """The statements of the read: all but an access record's INSERT of its own."""
    return sum(not query.startswith(ACCESS_RECORD_INSERT) for query in sql)


def rides(endpoint: str) -> bool:
    return RIDES[endpoint] and connection.vendor == "postgresql"


@dataclasses.dataclass
class History:
    course: Course
    department: Account


@pytest.fixture
def history(
    make_course: Callable[..., Course],
    make_user: Callable[..., Any],
    department: Account,
    root_account: Account,
) -> History:
    """Over 100 events of one course by five users, in requests with and without a page
    view row, from two SIS batches, with copies and resets; more in a sub-account."""
    subaccount = Account.objects.create(name="Genetics", parent=department)
    actors = [make_user(f"actor{index}") for index in range(5)]
    batches = [SisBatch.objects.create(root_account=root_account) for _ in range(2)]
    with audit_context(occurred_at=T0):
        course = make_course(name="Biology 101", course_code="BIO101")
        below = make_course(name="Genetics 201", account=subaccount)
    for index in range(100):
        request_id = uuid.uuid4()
        when = T0 + dt.timedelta(minutes=index)
        actor = actors[index % len(actors)]
        with audit_context(user=actor, source="api", request_id=request_id, occurred_at=when):
            services.course_update(course=course, name=f"Biology 101 v{index}")
            services.course_update(course=below, name=f"Genetics 201 v{index}")
            if index % 10 == 0:
                services.course_copy(source=course)
        if index % 3:
            PageView.objects.create(request_id=request_id, url="http://x/api", http_method="PUT")
        if index % 25 == 0:
            batch = batches[index // 25 % len(batches)]
            with audit_context(source="sis", sis_batch=batch, occurred_at=when):
                services.course_update(course=course, course_code=f"BIO101-{index}")
    with audit_context(user=actors[0], occurred_at=T0 + dt.timedelta(hours=3)):
        copy = services.course_copy(source=course, name="Biology 101 (copy)")
        services.course_reset(course=copy)
        services.course_reset(course=below)
        services.course_reset(course=course)
    assert CourseEvent.objects.filter(course=course).count() > 100
    return History(course=course, department=department)


ENDPOINTS: dict[str, Callable[[History], tuple[str, dict[str, str]]]] = {
    "course": lambda h: (f"/api/v1/audit/course/courses/{h.course.pk}", {}),
    "account": lambda h: (f"/api/v1/audit/course/accounts/{h.department.pk}", {}),
    "subaccounts": lambda h: (
        f"/api/v1/audit/course/accounts/{h.department.pk}",
        {"include_subaccounts": "true"},
    ),
}

# A token: the token, its user and the caller's grants in one query [+ the last_used_at
# UPDATE]; a session: the session, the user, the grants. Then the course or account, [the
# sub-accounts,] and the page of events with its links. (And the access record's INSERT,
# counted apart.)
EXPECTED_QUERIES = {
    ("course", "token"): 3,
    ("course", "token first use"): 4,
    ("course", "session"): 5,
    ("account", "token"): 3,
    ("account", "token first use"): 4,
    ("account", "session"): 5,
    ("subaccounts", "token"): 4,
    ("subaccounts", "token first use"): 5,
    ("subaccounts", "session"): 6,
}


@pytest.fixture
def auditor(make_user: Callable[..., Any], grant: Callable[..., Any], root_account: Account) -> Any:
    user = make_user("auditor")
    grant(user, root_account)
    return user


def authenticate(auth: str, user: Any) -> Callable[[], tuple[Client, dict[str, str]]]:
    """A factory of (client, headers) for one request, authenticated as ``auth`` says."""
    if auth == "session":
        client = Client()
        client.force_login(user)
        return lambda: (client, {})
    if auth == "token":
        _, plaintext = ApiToken.issue(user=user)
        headers = {"Authorization": f"Bearer {plaintext}"}
        Client().get("/api/v1/audit/course/courses/0", headers=headers)  # the first use
        return lambda: (Client(), headers)

    def fresh_token() -> tuple[Client, dict[str, str]]:
        _, plaintext = ApiToken.issue(user=user)
        return Client(), {"Authorization": f"Bearer {plaintext}"}

    return fresh_token


@pytest.mark.parametrize("auth", ["token", "token first use", "session"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_page_size_does_not_change_the_queries(
    endpoint: str,
    auth: str,
    history: History,
    auditor: Any,
    django_assert_max_num_queries: Any,
) -> None:
    path, params = ENDPOINTS[endpoint](history)
    new_client = authenticate(auth, auditor)
    counts: dict[int, int] = {}
    for per_page in (1, 100):
        client, headers = new_client()
        with django_assert_max_num_queries(BUDGET + ACCESS_RECORD_INSERTS) as captured:
            response = client.get(path, {**params, "per_page": per_page}, headers=headers)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["events"]) == per_page
        assert 'rel="next"' in response["Link"]
        sql = [query["sql"] for query in captured.captured_queries]
        [write] = record_writes(sql)
        page_sql = [query for query in sql if 'FROM "course_audit_courseevent"' in query]
        assert (write in page_sql) is rides(endpoint)
        counts[per_page] = reads(sql)
        record = AccessRecord.objects.order_by("-id").first()
        assert record is not None
        assert (record.surface, record.count, record.user_id) == ("api", per_page, auditor.pk)
        assert sum('FROM "course_audit_courseevent"' in query for query in sql) == 1
        token_writes = [
            query for query in sql if query.startswith('UPDATE "course_audit_apitoken"')
        ]
        assert len(token_writes) == (1 if auth == "token first use" else 0)

    assert counts[1] == counts[100] == EXPECTED_QUERIES[endpoint, auth]
    linked = body["linked"]
    assert len(linked["users"]) >= 5
    assert len(linked["page_views"]) >= 20
    assert len(linked["courses"]) >= 5
    assert {event["event_source"] for event in body["events"]} >= {"api", "sis"}
    assert any(event["links"]["sis_batch"] for event in body["events"])
    assert any("copied_to" in event["links"] for event in body["events"])
    assert any("reset_to" in event["links"] for event in body["events"])


def test_token_last_used_is_written_once_a_minute(history: History, auditor: Any) -> None:
    token, plaintext = ApiToken.issue(user=auditor)
    path = f"/api/v1/audit/course/courses/{history.course.pk}"
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert token.last_used_at is None

    with CaptureQueriesContext(connection) as first:
        assert Client().get(path, headers=headers).status_code == 200
    token.refresh_from_db()
    used = token.last_used_at
    assert used is not None
    with CaptureQueriesContext(connection) as second:
        assert Client().get(path, headers=headers).status_code == 200
    token.refresh_from_db()

    assert token.last_used_at == used
    assert len(first) == len(second) + 1


def test_the_token_query_loads_the_grants_and_a_revocation_counts_at_once(
    history: History, auditor: Any, admin_role: Any
) -> None:
    """The grants come with the token (no query of their own), yet nothing outlives the
    request: an override, a lost membership or a revoked token is obeyed by the next one."""
    from course_audit.models import AccountMembership, RoleOverride

    token, plaintext = ApiToken.issue(user=auditor)
    path = f"/api/v1/audit/course/courses/{history.course.pk}"
    headers = {"Authorization": f"Bearer {plaintext}"}
    Client().get(path, headers=headers)  # the first use writes last_used_at

    with CaptureQueriesContext(connection) as captured:
        assert Client().get(path, headers=headers).status_code == 200
    sql = [query["sql"] for query in captured.captured_queries]
    assert not any(query.startswith('SELECT "course_audit_accountmembership"') for query in sql)
    assert "course_audit_accountmembership" in sql[0] and "course_audit_apitoken" in sql[0]

    override = RoleOverride.objects.create(
        account=history.department, role=admin_role, permission="view_course_changes"
    )
    assert Client().get(path, headers=headers).status_code == 403
    override.delete()
    assert Client().get(path, headers=headers).status_code == 200
    AccountMembership.objects.filter(user=auditor).update(workflow_state="deleted")
    assert Client().get(path, headers=headers).status_code == 404
    AccountMembership.objects.filter(user=auditor).update(workflow_state="active")
    assert Client().get(path, headers=headers).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=dt.datetime.now(dt.UTC))
    assert Client().get(path, headers=headers).status_code == 401


@pytest.mark.parametrize("filters", ["name", "name,course_code", "sis_batch"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_changed_field_and_batch_filters_cost_no_query_more(
    endpoint: str, filters: str, history: History, auditor: Any
) -> None:
    """``field=`` and ``sis_batch_id=`` (issue #17) are read by the listing's own query,
    by the path that selects the page's rows on the events table alone, then joins."""
    path, params = ENDPOINTS[endpoint](history)
    if filters == "sis_batch":
        params = {**params, "sis_batch_id": str(SisBatch.objects.order_by("pk")[0].pk)}
    else:
        params = {**params, "field": filters}
    new_client = authenticate("token", auditor)
    client, headers = new_client()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, {**params, "per_page": 100}, headers=headers)
    assert response.status_code == 200, response.content
    events = response.json()["events"]
    assert events
    if filters == "sis_batch":
        assert {event["links"]["sis_batch"] for event in events} == {params["sis_batch_id"]}
    else:
        assert all(set(event["event_data"]) & set(filters.split(",")) for event in events)
    sql_run = [query["sql"] for query in captured]
    assert len(record_writes(sql_run)) == ACCESS_RECORD_INSERTS
    assert reads(sql_run) == EXPECTED_QUERIES[endpoint, "token"]
    [sql] = [query["sql"] for query in captured if "course_audit_courseevent" in query["sql"]]
    chosen = '(SELECT * FROM "course_audit_courseevent" '
    if ACCESS_RECORD_INSERT in sql:
        # The page's rows, chosen on the events table alone, then its record, then the joins.
        assert sql.startswith(f'WITH "course_audit_page" AS {chosen}')
        assert 'FROM "course_audit_page" "course_audit_courseevent"' in sql
    else:
        assert sql.startswith("SELECT") and f" FROM {chosen}" in sql
    # One index range (a batch's events; one field of one course or account) or several.
    one_range = filters == "sis_batch" or (filters == "name" and endpoint != "subaccounts")
    assert (ACCESS_RECORD_INSERT in sql) is (one_range and connection.vendor == "postgresql")
