"""Behind PgBouncer in transaction mode: the app keeps no state in a database session.

Under transaction pooling each transaction (each statement, in autocommit) may run on a
different server connection, so a ``SET``, an advisory lock, ``LISTEN``, a prepared
statement, a temporary table or a server-side cursor would be lost, or leak to another
client. docs/scaling.md says what the host sets; these tests keep the app's side true.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from course_audit.exports import EXPORT_CHUNK

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
SESSION_STATE = re.compile(
    r"^\s*(SET|RESET|DISCARD|LISTEN|UNLISTEN|PREPARE|EXECUTE|DEALLOCATE|DECLARE|"
    r"CREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP)\b|pg_advisory|set_config\s*\(",
    re.IGNORECASE,
)


@pytest.fixture
def registrar(caller, root_account, admin_role):
    return caller("api_registrar", (root_account, admin_role))


def _exercise(registrar, registrar_browser, course, root_account) -> None:
    """A write through the API, then every read surface; each answers 200."""
    put = registrar.send(
        "put",
        f"/api/v1/courses/{course.pk}",
        {"course": {"name": "Biology 102"}},
        content_type="application/json",
    )
    assert put.status_code == 200
    responses = [
        registrar.get(f"/api/v1/audit/course/courses/{course.pk}", per_page=100),
        registrar.get(f"/api/v1/audit/course/accounts/{root_account.pk}", include_subaccounts=1),
        registrar_browser.get(reverse("course_audit:home"), {"q": "biology"}),
        registrar_browser.get(reverse("course_audit:course_history", args=[course.pk])),
        registrar_browser.get(
            reverse("course_audit:account_history", args=[root_account.pk]),
            {"include_subaccounts": "1"},
        ),
    ]
    assert [response.status_code for response in responses] == [200] * len(responses)
    for kind in ("csv", "jsonl"):
        export = registrar_browser.get(
            reverse("course_audit:course_export", args=[course.pk]), {"format": kind}
        )
        assert export.status_code == 200
        lines = b"".join(export.streaming_content).splitlines()
        # More than one chunk: the export's keyset walk runs several queries.
        assert len(lines) >= EXPORT_CHUNK + 2


@pytest.fixture
def busy_course(course, add_events):
    add_events(course, EXPORT_CHUNK + 1, when=T0, step=dt.timedelta(seconds=1))
    return course


def test_no_statement_leaves_state_in_the_session(
    registrar, registrar_browser, busy_course, root_account
):
    with CaptureQueriesContext(connections["default"]) as queries:
        _exercise(registrar, registrar_browser, busy_course, root_account)

    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) > 20
    assert [
        sql for sql in statements if SESSION_STATE.search(sql) and not _transaction_local(sql)
    ] == []


def _transaction_local(sql: str) -> bool:
    """Every set_config of the statement sets its third argument, is_local, to true."""
    calls = sql.count("set_config(")
    return calls > 0 and sql.count(", true)") >= calls


def test_nothing_reads_through_a_server_side_cursor(
    monkeypatch, registrar, registrar_browser, busy_course, root_account, client, make_user
):
    """``QuerySet.iterator()`` is the only way Django opens a named cursor (on PostgreSQL,
    unless ``DISABLE_SERVER_SIDE_CURSORS``), and it asks ``chunked_cursor()`` for it: the
    exports page by keyset instead, so they stream the same with the setting on or off."""

    def refuse() -> None:
        raise AssertionError("a server-side cursor was asked for")

    monkeypatch.setattr(connections["default"], "chunked_cursor", refuse)

    _exercise(registrar, registrar_browser, busy_course, root_account)
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    changelist = client.get(reverse("admin:course_audit_courseevent_changelist"), {"q": "bio"})
    assert changelist.status_code == 200
    assert len(changelist.context["cl"].result_list) == 100
