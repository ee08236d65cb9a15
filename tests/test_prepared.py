"""``COURSE_AUDIT_PREPARED_STATEMENTS``: the audit API's fixed-shape queries as prepared
statements (``course_audit.prepared``), nothing else, and the same answers either way.

On PostgreSQL a session's named statements are in ``pg_prepared_statements``; the test
client's requests run on the test's own connection, so what they prepared is there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from course_audit import prepared
from course_audit.models import AccessRecord, Account, ApiToken, Course

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)

# A connection with psycopg's own ``prepare_threshold`` (scripts/test runs the suite so once,
# DATABASE_PREPARE_THRESHOLD=1) prepares every query it runs, whatever the app asks: what the
# app alone prepared cannot be told apart there, only that the answers stay the same.
PREPARES_EVERYTHING = (
    connection.vendor == "postgresql"
    and connection.settings_dict.get("OPTIONS", {}).get("prepare_threshold") is not None
)
apart_from_the_app = pytest.mark.skipif(
    PREPARES_EVERYTHING, reason="the connection prepares every query itself (prepare_threshold)"
)


@pytest.fixture(autouse=True)
def _off_until_asked(settings: Any) -> None:
    """Off (the demo's settings turn it on), so that a test sees only what it prepared."""
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = False


@pytest.fixture
def busy(course: Course, add_events: Callable[..., Any]) -> Course:
    add_events(course, 25, when=T0, step=dt.timedelta(days=9))  # over several months
    return course


@pytest.fixture
def token(make_user: Callable[..., Any], grant: Callable[..., Any], root_account: Account) -> str:
    user = make_user("auditor")
    grant(user, root_account)
    _, plaintext = ApiToken.issue(user=user)
    Client().get("/api/v1/audit/course/courses/0", headers=_bearer(plaintext))  # first use
    return plaintext


def _bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


def _statements() -> list[str]:
    """The statements this session has prepared (each a named statement's SQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        return [row[0] for row in cursor.fetchall()]


def _queries_of_three_pages(path: str, plaintext: str) -> int:
    """How many queries three requests of the listing's first page ran."""
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            response = Client().get(path, {"per_page": 10}, headers=_bearer(plaintext))
            assert response.status_code == 200
    return len(captured)


def _pages(path: str, plaintext: str, params: dict[str, Any]) -> list[Any]:
    """Each page of the listing, following ``Link: rel="next"``: status, body, Link."""
    pages = []
    url: str | None = path
    while url is not None:
        response = Client().get(url, params if url == path else None, headers=_bearer(plaintext))
        assert response.status_code == 200, response.content
        pages.append((response.json(), response.headers.get("Link")))
        url = None
        for part in (response.headers.get("Link") or "").split(","):
            if 'rel="next"' in part:
                url = part.split(";")[0].strip().strip("<>").replace("http://testserver", "")
    return pages


@postgres_only
@pytest.mark.parametrize("listing", ["course", "account", "subaccounts"])
def test_the_listings_answer_the_same_with_and_without(
    listing: str, busy: Course, token: str, settings: Any, department: Account
) -> None:
    path, params = {
        "course": (f"/api/v1/audit/course/courses/{busy.pk}", {}),
        "account": (f"/api/v1/audit/course/accounts/{busy.account_id}", {}),
        "subaccounts": (
            f"/api/v1/audit/course/accounts/{department.parent_id}",
            {"include_subaccounts": "true"},
        ),
    }[listing]
    params = {**params, "per_page": 4}
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = False
    off = _pages(path, token, params)
    if not PREPARES_EVERYTHING:
        assert _statements() == []
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    # Twice: the first run prepares, the second runs what is prepared.
    assert _pages(path, token, params) == off
    assert _pages(path, token, params) == off
    assert sum(len(body["events"]) for body, _ in off) == 26  # and the course created
    assert len(off) == 7


@postgres_only
@apart_from_the_app
def test_only_the_fixed_shape_queries_are_prepared(busy: Course, token: str, settings: Any) -> None:
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    path = f"/api/v1/audit/course/courses/{busy.pk}"
    records = AccessRecord.objects.count()
    queries = _queries_of_three_pages(path, token)
    statements = _statements()
    # The token with its grants, the course, the page of events with its access record:
    # each once, however often it ran; the same SQL the query log shows.
    assert len(statements) == 3, statements
    assert queries == 3 * 3
    assert 'FROM "course_audit_apitoken"' in statements[0]
    assert "course_audit_accountmembership" in statements[0]
    assert 'FROM "course_audit_course"' in statements[1]
    assert 'AS (SELECT * FROM "course_audit_courseevent"' in statements[2]
    assert 'INSERT INTO "course_audit_accessrecord"' in statements[2]
    assert AccessRecord.objects.count() == records + 3

    # A filtered listing's page (a shape of its own) and Django's own queries are not
    # prepared, however often they run.
    for _ in range(8):
        response = Client().get(path, {"event_type": "updated"}, headers=_bearer(token))
        assert response.status_code == 200
        assert Course.objects.filter(pk=busy.pk).exists()
    assert _statements() == statements


@postgres_only
def test_a_revoked_token_is_refused_by_the_prepared_lookup(
    busy: Course, token: str, settings: Any
) -> None:
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    path = f"/api/v1/audit/course/courses/{busy.pk}"
    for _ in range(8):  # past PostgreSQL's five custom plans: a generic plan if it chooses
        assert Client().get(path, headers=_bearer(token)).status_code == 200
    ApiToken.objects.update(revoked_at=dt.datetime.now(dt.UTC))
    assert Client().get(path, headers=_bearer(token)).status_code == 401


@postgres_only
@apart_from_the_app
def test_only_the_aliases_named(busy: Course, token: str, settings: Any) -> None:
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = ["replica"]
    assert not prepared.enabled("default") and prepared.enabled("replica")
    path = f"/api/v1/audit/course/courses/{busy.pk}"
    assert Client().get(path, headers=_bearer(token)).status_code == 200
    assert _statements() == []
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = ["default"]
    assert Client().get(path, headers=_bearer(token)).status_code == 200
    assert len(_statements()) == 3


@postgres_only
@apart_from_the_app
def test_the_account_listing_prepares_its_lookup_too(
    busy: Course, token: str, settings: Any
) -> None:
    """The account's lookup has a value of its own (active accounts only): prepared as
    the course's is, and a closed account is still not found through it."""
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    path = f"/api/v1/audit/course/accounts/{busy.account_id}"
    queries = _queries_of_three_pages(path, token)
    statements = _statements()
    assert len(statements) == 3, statements
    assert queries == 3 * 3
    # The account by its id ($1) and the constant state ($2).
    assert 'FROM "course_audit_account"' in statements[1] and "$2" in statements[1]
    Account.objects.filter(pk=busy.account_id).update(workflow_state="deleted")
    assert Client().get(path, headers=_bearer(token)).status_code == 404
    assert _statements() == statements


def test_never_on_sqlite_nor_when_off(settings: Any) -> None:
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = False
    assert not prepared.enabled("default")
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    assert prepared.enabled("default") is (connection.vendor == "postgresql")


@pytest.mark.parametrize("value", ["yes", 1, ["nowhere"], [3]])
def test_a_setting_of_the_wrong_kind_is_reported(value: Any, settings: Any) -> None:
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = value
    errors = [message for message in run_checks() if message.id == "course_audit.E021"]
    assert len(errors) == 1
    assert "COURSE_AUDIT_PREPARED_STATEMENTS" in errors[0].msg


@pytest.mark.parametrize("value", [True, False, ["default"], ("default", "replica")])
def test_a_setting_of_the_right_kind_is_not(value: Any, settings: Any) -> None:
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = value
    assert [message for message in run_checks() if message.id == "course_audit.E021"] == []


def test_the_demo_prepares_on_postgresql_with_generic_plans() -> None:
    """The demo's settings: on for PostgreSQL, with generic plans for the connection (which
    change only statements with parameters: these)."""
    from auditlog_project import settings as demo

    on = connection.vendor == "postgresql"
    assert demo.COURSE_AUDIT_PREPARED_STATEMENTS is on
    options = demo.DATABASES["default"].get("OPTIONS", {})
    assert (options.get("options") == "-c plan_cache_mode=force_generic_plan") is on
    if on:
        with connection.cursor() as cursor:
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone()[0] == "force_generic_plan"


_TIMES_SQL = (
    "SELECT t FROM (VALUES ('2025-03-03 12:00:00.123456+00'::timestamptz),"
    " ('2024-10-27 01:30:00+02'::timestamptz), (NULL::timestamptz)) v(t)"
)


def _times(cursor_of: Callable[[], Any]) -> tuple[list[Any], type]:
    from psycopg.pq import Format

    with cursor_of() as cursor:
        cursor.execute(_TIMES_SQL)
        loader = cursor.cursor.adapters.get_loader(1184, Format.TEXT)
        return [row[0] for row in cursor.fetchall()], loader


@postgres_only
@pytest.mark.parametrize("session_zone", [None, "America/Chicago"])
def test_the_prepared_cursor_reads_times_as_django_does(
    session_zone: str | None, settings: Any
) -> None:
    """psycopg's compiled loader (ten times Django's) where the session's time zone is the
    one Django wants; Django's own where it is not: the values Django's cursor reads, either
    way (under a session zone of its own Django keeps each value's wall time and puts its
    own zone on it, and so does the prepared cursor)."""
    from django.db.backends.postgresql.psycopg_any import BaseTzLoader

    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    connection.ensure_connection()
    if session_zone is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET TIME ZONE '{session_zone}'")
    try:
        expected, _ = _times(connection.cursor)
        values, loader = _times(lambda: prepared.cursor("default"))
    finally:
        if session_zone is not None:
            with connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
    assert values == expected
    assert [value.tzinfo for value in values[:2]] == [dt.UTC, dt.UTC]
    assert values[2] is None
    if session_zone is None:
        assert values[:2] == [
            dt.datetime(2025, 3, 3, 12, 0, 0, 123456, tzinfo=dt.UTC),
            dt.datetime(2024, 10, 26, 23, 30, tzinfo=dt.UTC),
        ]
    assert issubclass(loader, BaseTzLoader) is (session_zone is not None)
