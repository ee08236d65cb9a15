"""``COURSE_AUDIT_READ_DATABASE``: every audit read goes to the named alias, every write and
every access decision stays on the primary.

The ``replica`` alias (tests/settings.py) is a second connection to the test database,
made read-only for these tests as a hot standby is: a write sent to it would fail. Data
must be committed for that second connection to see it, hence ``transaction=True``; it
works the same way on PostgreSQL and on SQLite (a shared in-memory database).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import DatabaseError, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from course_audit import recording, services
from course_audit.context import audit_context
from course_audit.models import Account, CourseEvent, PageView

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
EVENTS = '"course_audit_courseevent"'
COURSES = '"course_audit_course"'


@pytest.fixture
def replica(settings):
    """Reads go to ``replica``, a connection that refuses to write."""
    settings.COURSE_AUDIT_READ_DATABASE = "replica"
    connection = connections["replica"]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET default_transaction_read_only = on")
        else:
            cursor.execute("PRAGMA query_only = ON")
    yield connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("RESET default_transaction_read_only")
        else:
            cursor.execute("PRAGMA query_only = OFF")


class Captured:
    def __init__(self, primary: CaptureQueriesContext, replica: CaptureQueriesContext) -> None:
        self.primary = primary
        self.replica = replica

    @staticmethod
    def _sql(context: CaptureQueriesContext) -> list[str]:
        return [query["sql"] for query in context.captured_queries]

    @property
    def primary_sql(self) -> list[str]:
        return self._sql(self.primary)

    @property
    def replica_sql(self) -> list[str]:
        return self._sql(self.replica)

    def primary_selects_of(self, table: str) -> list[str]:
        return [sql for sql in self.primary_sql if _is_select(sql) and table in sql]

    def replica_selects_of(self, table: str) -> list[str]:
        return [sql for sql in self.replica_sql if _is_select(sql) and table in sql]

    def assert_events_read_on_the_replica_only(self) -> None:
        assert self.replica_selects_of(EVENTS)
        assert all(_is_select(sql) for sql in self.replica_sql), self.replica_sql
        assert self.primary_selects_of(EVENTS) == []


def _is_select(sql: str) -> bool:
    # A UNION of SELECTs (the grants query) starts with a parenthesis.
    return sql.lstrip("( \n").upper().startswith(("SELECT", "WITH"))


@contextmanager
def captured() -> Iterator[Captured]:
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as replica,
    ):
        yield Captured(primary, replica)


@pytest.fixture
def history(course, college, make_user, add_events):
    """A course with events by a user, in a request, and a sibling course in another
    department (so a subtree listing has several accounts)."""
    actor = make_user("clerk")
    view = PageView.objects.create(
        request_id=uuid.uuid4(),
        url="http://testserver/registrar/",
        http_method="POST",
        context_type="Course",
        context_id=course.pk,
        account=course.account,
    )
    step = dt.timedelta(minutes=1)
    add_events(course, 5, when=T0, step=step, user=actor, user_name="clerk", page_view=view)
    chemistry = Account.objects.create(name="Chemistry", parent=college, sis_account_id="CHEM")
    other = services.course_create(account=chemistry, name="Organic Chemistry")
    return {"course": course, "actor": actor, "view": view, "other": other}


@pytest.fixture
def registrar(caller, root_account, admin_role):
    return caller("api_registrar", (root_account, admin_role))


def _consume(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_the_stand_in_replica_refuses_writes(replica, course):
    """What makes "no write reached the replica" checkable: there, one would fail."""
    with pytest.raises(DatabaseError):
        PageView.objects.using("replica").create(request_id=uuid.uuid4(), url="/")
    assert not PageView.objects.exists()


# --- the API -------------------------------------------------------------------------------


def test_the_api_course_listing_and_its_linked_objects_come_from_the_replica(
    replica, registrar, history
):
    course = history["course"]
    path = f"/api/v1/audit/course/courses/{course.pk}"

    with captured() as queries:
        response = registrar.get(path, per_page=100)

    assert response.status_code == 200
    body = response.json()
    assert len(body["events"]) == 6  # created, and the five added
    assert [user["id"] for user in body["linked"]["users"]] == [str(history["actor"].pk)]
    assert [view["id"] for view in body["linked"]["page_views"]] == [str(history["view"].pk)]
    assert [linked["id"] for linked in body["linked"]["courses"]] == [str(course.pk)]
    queries.assert_events_read_on_the_replica_only()
    # The linked users and page views are joined into the replica's event query.
    [events_query] = queries.replica_selects_of(EVENTS)
    assert '"course_audit_pageview"' in events_query
    # The token and the course (whose account decides access) are read on the primary.
    assert any('"course_audit_apitoken"' in sql for sql in queries.primary_sql)
    assert queries.primary_selects_of(COURSES)
    assert not queries.replica_selects_of('"course_audit_apitoken"')
    assert not queries.replica_selects_of('"course_audit_accountmembership"')


def test_the_api_account_listing_with_subaccounts_comes_from_the_replica(
    replica, registrar, history, root_account
):
    path = f"/api/v1/audit/course/accounts/{root_account.pk}"

    with captured() as queries:
        response = registrar.get(path, include_subaccounts="true", per_page=100)

    assert response.status_code == 200
    events = response.json()["events"]
    assert {event["links"]["course"] for event in events} == {
        str(history["course"].pk),
        str(history["other"].pk),
    }
    assert len(events) == 6 + 1
    queries.assert_events_read_on_the_replica_only()
    # The grants and the subtree they apply to are read on the primary.
    assert any('"course_audit_accountmembership"' in sql for sql in queries.primary_sql)
    assert not queries.replica_selects_of('"course_audit_accountmembership"')


# --- the pages -----------------------------------------------------------------------------


def test_the_course_history_page_and_its_chart_come_from_the_replica(
    replica, registrar_browser, history
):
    course = history["course"]

    with captured() as queries:
        response = registrar_browser.get(reverse("course_audit:course_history", args=[course.pk]))

    assert response.status_code == 200
    assert len(response.context["events"]) == 6
    assert response.context["chart"].total == 6
    queries.assert_events_read_on_the_replica_only()
    # The list and the chart (its ends, its cap and its counts in one query): both on
    # the replica.
    assert len(queries.replica_selects_of(EVENTS)) == 2


def test_the_account_history_page_comes_from_the_replica(
    replica, registrar_browser, history, root_account
):
    url = reverse("course_audit:account_history", args=[root_account.pk])

    with captured() as queries:
        response = registrar_browser.get(url, {"include_subaccounts": "1"})

    assert response.status_code == 200
    assert len(response.context["events"]) == 7
    queries.assert_events_read_on_the_replica_only()


def test_the_search_and_the_account_tree_come_from_the_replica(replica, registrar_browser, history):
    with captured() as queries:
        response = registrar_browser.get(reverse("course_audit:home"), {"q": "organic"})

    assert response.status_code == 200
    assert [course.pk for course in response.context["courses"]] == [history["other"].pk]
    assert [node.account.name for node in response.context["tree"]] == ["State University"]
    assert queries.replica_selects_of(COURSES)
    assert queries.replica_selects_of('"course_audit_account"')
    assert all(_is_select(sql) for sql in queries.replica_sql)
    # Which accounts the user may audit is decided on the primary; courses are not read there.
    assert any('"course_audit_accountmembership"' in sql for sql in queries.primary_sql)
    assert queries.primary_selects_of(COURSES) == []


def test_the_page_view_page_reads_its_events_from_the_replica(replica, registrar_browser, history):
    view = history["view"]

    with captured() as queries:
        response = registrar_browser.get(reverse("course_audit:page_view", args=[view.pk]))

    assert response.status_code == 200
    assert len(response.context["events"]) == 5
    queries.assert_events_read_on_the_replica_only()
    # The request itself decides access (its account): read on the primary.
    assert any('"course_audit_pageview"' in sql for sql in queries.primary_sql)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_the_exports_stream_from_the_replica(replica, registrar_browser, history, kind):
    course = history["course"]
    url = reverse("course_audit:course_export", args=[course.pk])

    with captured() as queries:
        response = registrar_browser.get(url, {"format": kind})
        content = _consume(response)

    assert response.status_code == 200
    lines = content.splitlines()
    if kind == "csv":
        assert len(lines) == 1 + 6
    else:
        assert [json.loads(line)["course_id"] for line in lines] == [course.pk] * 6
    queries.assert_events_read_on_the_replica_only()


def test_the_account_export_with_subaccounts_streams_from_the_replica(
    replica, registrar_browser, history, root_account
):
    url = reverse("course_audit:account_export", args=[root_account.pk])

    with captured() as queries:
        response = registrar_browser.get(url, {"format": "jsonl", "include_subaccounts": "1"})
        lines = _consume(response).splitlines()

    assert response.status_code == 200
    assert len(lines) == 7
    queries.assert_events_read_on_the_replica_only()


# --- the admin -----------------------------------------------------------------------------


def test_the_admin_reads_course_events_from_the_replica(replica, client, make_user, history):
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    event = CourseEvent.objects.filter(page_view=history["view"]).newest_first()[0]

    with captured() as queries:
        changelist = client.get(
            reverse("admin:course_audit_courseevent_changelist"), {"q": "clerk"}
        )
        page = client.get(reverse("admin:course_audit_courseevent_change", args=[event.pk]))

    assert changelist.status_code == 200
    assert len(changelist.context["cl"].result_list) == 5
    assert page.status_code == 200
    assert str(history["view"]) in page.content.decode()
    queries.assert_events_read_on_the_replica_only()
    # The search's users and the event's page view are read where the events are.
    assert queries.replica_selects_of('"course_audit_pageview"')


# --- writes --------------------------------------------------------------------------------


def test_writes_go_to_the_primary_only(replica, registrar, history):
    course = history["course"]
    path = f"/api/v1/courses/{course.pk}"

    with captured() as queries:
        response = registrar.send(
            "put", path, {"course": {"name": "Biology 102"}}, content_type="application/json"
        )
        with audit_context(user=registrar.user, source=CourseEvent.EventSource.MANUAL):
            services.course_publish(course=course)

    assert response.status_code == 200
    assert queries.replica_sql == []
    writes = [sql for sql in queries.primary_sql if not _is_select(sql)]
    if recording.database_records("default"):
        # The triggers write the events; the app tells them who acts, on the primary.
        assert any("set_config('course_audit.context'" in sql for sql in queries.primary_sql)
    else:
        assert any(sql.startswith(f"INSERT INTO {EVENTS}") for sql in writes)
    assert any(sql.startswith('INSERT INTO "course_audit_pageview"') for sql in writes)
    assert any(sql.startswith(f"UPDATE {COURSES}") for sql in writes)
    newest = CourseEvent.objects.filter(course=course).newest_first()[:2]
    assert [event.event_type for event in newest] == ["published", "updated"]


def test_the_api_reads_what_it_just_wrote_from_the_replica(replica, registrar, history):
    """A PUT, then a GET of the listing: with a real replica the GET may miss the new event
    until the replica replays it (docs/scaling.md); here the mirror has no lag."""
    course = history["course"]
    path = f"/api/v1/courses/{course.pk}"
    registrar.send("put", path, {"course": {"name": "Bio 2"}}, content_type="application/json")

    with captured() as queries:
        response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", per_page=1)

    assert response.json()["events"][0]["event_data"] == {"name": ["Biology 101", "Bio 2"]}
    queries.assert_events_read_on_the_replica_only()


# --- without the setting -------------------------------------------------------------------


def test_without_the_setting_everything_reads_from_the_primary(
    registrar, registrar_browser, history, root_account
):
    course = history["course"]

    with captured() as queries:
        api = registrar.get(
            f"/api/v1/audit/course/accounts/{root_account.pk}", include_subaccounts="true"
        )
        page = registrar_browser.get(reverse("course_audit:course_history", args=[course.pk]))
        export = registrar_browser.get(
            reverse("course_audit:course_export", args=[course.pk]), {"format": "csv"}
        )
        rows = _consume(export).splitlines()
        home = registrar_browser.get(reverse("course_audit:home"), {"q": "bio"})

    assert (api.status_code, page.status_code, export.status_code) == (200, 200, 200)
    assert home.status_code == 200
    assert len(rows) == 1 + 6
    assert queries.replica_sql == []
    # The API's page, the history page's list and chart, the export's rows.
    assert len(queries.primary_selects_of(EVENTS)) >= 4
    assert queries.primary_selects_of(COURSES)
