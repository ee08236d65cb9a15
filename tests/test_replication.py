"""The app against a real streaming standby and PgBouncer (marker ``replication``).

``scripts/test replication`` runs these inside ``scripts/replication``, with
``--ds=tests.settings_replication``: writes go through PgBouncer in transaction mode to
the primary, audit reads to the standby. Elsewhere they skip. Each test leaves the three
servers running and the standby replaying at once, whatever it did to them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import DatabaseError, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from course_audit import checks, replication, services
from course_audit.context import audit_context
from course_audit.models import Account, AccountMembership, Course, CourseEvent, Role
from tests.api_fixtures import ApiCaller

CLUSTER = os.environ.get("COURSE_AUDIT_REPLICATION")

pytestmark = [
    pytest.mark.replication,
    pytest.mark.skipif(
        not CLUSTER or "direct" not in django_settings.DATABASES,
        reason="needs scripts/replication and --ds=tests.settings_replication",
    ),
    pytest.mark.django_db(transaction=True, databases=["default", "direct", "replica"]),
]

# Long enough that a read made at once certainly finds the standby behind.
APPLY_DELAY_MS = 3000


@pytest.fixture(scope="module")
def cluster() -> Any:
    from bench._cluster import Replication

    assert CLUSTER is not None
    return Replication.from_description(CLUSTER)


@pytest.fixture(autouse=True)
def _fresh_state(cluster: Any) -> Iterator[None]:
    replication.forget()
    yield
    replication.forget()


@pytest.fixture
def in_step(cluster: Any, transactional_db: None) -> None:
    """The standby has replayed everything written so far (the fixtures' rows)."""
    cluster.wait_for_standby()


@pytest.fixture
def lagging(cluster: Any, settings: Any, in_step: None) -> Iterator[None]:
    """The standby replays each commit ``APPLY_DELAY_MS`` after the primary made it, and no
    lag sends reads to the primary by itself: only read-your-writes does."""
    settings.COURSE_AUDIT_READ_MAX_LAG = None
    cluster.standby.set_apply_delay(APPLY_DELAY_MS)
    try:
        yield
    finally:
        cluster.standby.set_apply_delay(0)
        cluster.wait_for_standby()


@pytest.fixture
def registrar(
    make_user: Callable[..., Any], root_account: Account, admin_role: Role
) -> Callable[[str], Any]:
    """A user who may audit and change every course of the root account."""

    def make(name: str) -> Any:
        user = make_user(name)
        AccountMembership.objects.create(user=user, account=root_account, role=admin_role)
        return user

    return make


def session_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_events(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content[:300]
    return response.json()["events"]


def rename(client: Client | ApiCaller, course: Course, name: str) -> Any:
    path = f"/api/v1/courses/{course.pk}"
    data = json.dumps({"course": {"name": name}})
    if isinstance(client, ApiCaller):
        response = client.send("put", path, data, content_type="application/json")
    else:
        response = client.put(path, data, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    return response


def history(client: Client, course: Course) -> str:
    response = client.get(f"/audit/courses/{course.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def export_rows(client: Client, course: Course) -> list[dict[str, Any]]:
    response = client.get(f"/audit/courses/{course.pk}/export/", {"format": "jsonl"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line]


def renamed_to(events: list[dict[str, Any]], name: str) -> bool:
    return any(
        (event.get("event_data") or {}).get("name", [None, None])[1] == name for event in events
    )


def wait_until_pgbouncer_serves(timeout: float = 15) -> None:
    """PgBouncer waits ``server_login_retry`` before it tries a restarted primary again."""
    deadline = time.monotonic() + timeout
    connection = connections["default"]
    while True:
        try:
            connection.close()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return
        except DatabaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# The setup itself ------------------------------------------------------------------------


def test_writes_go_through_pgbouncer_and_reads_to_a_standby(cluster: Any, in_step: None) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT inet_server_port(), pg_is_in_recovery()")
        assert cursor.fetchone() == (cluster.primary.port, False)
    assert int(connections["default"].settings_dict["PORT"]) == cluster.pooler.port
    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT inet_server_port(), pg_is_in_recovery()")
        assert cursor.fetchone() == (cluster.standby.port, True)
    # PgBouncer's own console: transaction mode, server-side prepared statements impossible
    # (1.18 has no max_prepared_statements; the app prepares none).
    assert cluster.pooler.setting("pool_mode") == "transaction"
    with pytest.raises(KeyError):
        cluster.pooler.setting("max_prepared_statements")


def test_the_pooler_check_warns_for_pgbouncer_and_not_for_the_direct_alias(
    settings: Any, transactional_db: None
) -> None:
    settings.COURSE_AUDIT_DIRECT_DATABASE = None
    [warning] = checks.check_direct_connection(databases=["default"])
    assert warning.id == "course_audit.W007"
    assert "Database 'default' names port" in warning.msg
    settings.COURSE_AUDIT_DIRECT_DATABASE = "direct"
    assert checks.check_direct_connection(databases=["direct"]) == []


def test_partition_and_checkpoint_jobs_use_the_direct_connection(
    keys: Any, course: Course, transactional_db: None
) -> None:
    out, sealed = StringIO(), StringIO()
    with (
        CaptureQueriesContext(connections["direct"]) as direct,
        CaptureQueriesContext(connections["default"]) as pooled,
    ):
        call_command("course_audit_partitions", stdout=out)
        call_command("course_audit_checkpoint", stdout=sealed)
    assert "course_audit_courseevent_p" in out.getvalue()
    assert re.search(r"checkpoint #1: [\d,]+ events", sealed.getvalue())
    assert direct.captured_queries
    assert pooled.captured_queries == []


def test_the_audit_context_reaches_the_triggers_through_pgbouncer(
    caller: Callable[..., ApiCaller],
    root_account: Account,
    admin_role: Role,
    course: Course,
    make_user: Callable[..., Any],
) -> None:
    # Server connections are shared by every client transaction: attribution set in one
    # transaction (set_config(..., true)) must neither be lost nor leak into the next.
    alice = caller("alice", (root_account, admin_role))
    bob = make_user("bob")
    for round_ in range(4):
        response = rename(alice, course, f"Alice {round_}")
        with audit_context(user=bob, source="sis"):
            services.course_update(course=Course.objects.get(pk=course.pk), name=f"Bob {round_}")
        # Plain SQL outside any audit context: the database's own attribution only.
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "UPDATE course_audit_course SET name = %s WHERE id = %s",
                [f"SQL {round_}", course.pk],
            )
        newest = list(CourseEvent.objects.filter(course=course).order_by("-id")[:3])
        sql_event, bob_event, alice_event = newest
        assert alice_event.user_id == alice.user.pk
        assert alice_event.event_source == "api"
        assert str(alice_event.request_id) == response["X-Request-Id"]
        assert bob_event.user_id == bob.pk
        assert bob_event.event_source == "sis"
        assert bob_event.request_id is None
        assert sql_event.user_id is None
        assert sql_event.event_source == "manual"
        assert sql_event.request_id is None


# Read-your-writes ------------------------------------------------------------------------


def test_a_session_sees_its_own_write_at_once_on_every_surface(
    registrar: Callable[[str], Any], course: Course, lagging: None
) -> None:
    writer = session_client(registrar("writer"))
    bystander = session_client(registrar("bystander"))
    history(bystander, course)  # the bystander's reads are on the standby, in step
    rename(writer, course, "Seen at once")
    started = time.monotonic()
    assert "Seen at once" in history(writer, course)
    listing = api_events(writer.get(f"/api/v1/audit/course/courses/{course.pk}"))
    assert renamed_to(listing, "Seen at once")
    assert any("Seen at once" in json.dumps(row) for row in export_rows(writer, course))
    # The standby had not replayed it: a caller who did not write reads the standby (the
    # course itself, read on the primary, has its new name: not its event).
    bystander_listing = api_events(bystander.get(f"/api/v1/audit/course/courses/{course.pk}"))
    bystander_export = export_rows(bystander, course)
    assert time.monotonic() - started < APPLY_DELAY_MS / 1000
    assert not renamed_to(bystander_listing, "Seen at once")
    assert len(bystander_export) == len(listing) - 1
    # Once it has, the writer reads the standby again.
    time.sleep(APPLY_DELAY_MS / 1000 + 0.5)
    with CaptureQueriesContext(connections["replica"]) as replica:
        assert "Seen at once" in history(writer, course)
    assert any("course_audit_courseevent" in query["sql"] for query in replica.captured_queries)


def test_an_api_token_sees_its_own_write_at_once(
    caller: Callable[..., ApiCaller],
    root_account: Account,
    admin_role: Role,
    course: Course,
    lagging: None,
) -> None:
    writer = caller("token_writer", (root_account, admin_role))
    bystander = caller("token_reader", (root_account, admin_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    rename(writer, course, "Token write")
    assert renamed_to(api_events(writer.get(path)), "Token write")
    assert not renamed_to(api_events(bystander.get(path)), "Token write")
    # The floor lives on the token's row (on the primary), not in a process's memory.
    token = writer.user.course_audit_tokens.get()
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", token.write_lsn)


# Degrade, never fail ---------------------------------------------------------------------


def test_a_standby_lagging_past_the_limit_sends_reads_to_the_primary(
    registrar: Callable[[str], Any],
    course: Course,
    lagging: None,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.COURSE_AUDIT_READ_MAX_LAG = 1
    services.course_update(course=course, name="Written elsewhere")
    reader = session_client(registrar("reader"))
    time.sleep(1.2)  # past the limit, before the replay
    caplog.set_level(logging.WARNING, logger="course_audit.replication")
    for _ in range(3):
        replication.forget_status()
        assert "Written elsewhere" in history(reader, course)
    lagging_lines = [r for r in caplog.records if "is lagging" in r.getMessage()]
    assert len(lagging_lines) == 1


def test_a_standby_that_is_down_sends_reads_to_the_primary(
    cluster: Any,
    registrar: Callable[[str], Any],
    course: Course,
    in_step: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = session_client(registrar("reader"))
    caplog.set_level(logging.WARNING, logger="course_audit.replication")
    cluster.standby.stop()
    try:
        services.course_update(course=course, name="While the standby is down")
        for _ in range(2):
            replication.forget_status()
            assert "While the standby is down" in history(reader, course)
            events = api_events(reader.get(f"/api/v1/audit/course/courses/{course.pk}"))
            assert renamed_to(events, "While the standby is down")
            assert len(export_rows(reader, course)) == len(events)
    finally:
        cluster.standby.start_server()
    down_lines = [r for r in caplog.records if "is down" in r.getMessage()]
    assert len(down_lines) == 1
    cluster.wait_for_standby()


def test_with_the_primary_down_reads_answer_from_the_standby_and_writes_503(
    cluster: Any,
    caller: Callable[..., ApiCaller],
    registrar: Callable[[str], Any],
    root_account: Account,
    admin_role: Role,
    course: Course,
    in_step: None,
) -> None:
    api = caller("api_reader", (root_account, admin_role))
    reader = session_client(registrar("page_reader"))
    services.course_update(course=course, name="Before the outage")
    cluster.wait_for_standby()
    history(reader, course)
    cluster.primary.stop()
    try:
        page = history(reader, course)
        assert "Read-only mode" in page
        assert "Before the outage" in page
        events = api_events(api.get(f"/api/v1/audit/course/courses/{course.pk}"))
        assert renamed_to(events, "Before the outage")
        assert len(export_rows(reader, course)) == len(events)
        subtree = f"/api/v1/audit/course/accounts/{root_account.pk}"
        account = api_events(api.get(subtree, include_subaccounts="true"))
        assert {event["id"] for event in events} <= {event["id"] for event in account}
        response = api.send(
            "put",
            f"/api/v1/courses/{course.pk}",
            json.dumps({"course": {"name": "During the outage"}}),
            content_type="application/json",
        )
        assert response.status_code == 503
        assert response["Retry-After"] == "30"
    finally:
        cluster.primary.start_server()
        wait_until_pgbouncer_serves()
    replication.forget()
    page = history(reader, course)
    assert "Read-only mode" not in page
    assert "During the outage" not in page
    assert Course.objects.get(pk=course.pk).name == "Before the outage"


def test_paging_moving_from_the_primary_to_the_standby_skips_nothing(
    caller: Callable[..., ApiCaller],
    root_account: Account,
    admin_role: Role,
    course: Course,
    lagging: None,
    settings: Any,
) -> None:
    api = caller("pager", (root_account, admin_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    for number in range(6):
        services.course_update(course=course, name=f"Step {number}")
    time.sleep(APPLY_DELAY_MS / 1000 + 0.5)  # all replayed
    # A backfill: old events, committed now, which the standby will not have for a while.
    with audit_context(occurred_at=course.created_at + dt.timedelta(microseconds=1)):
        services.course_update(course=Course.objects.get(pk=course.pk), name="Backfilled")
    events = CourseEvent.objects.filter(course=course).newest_first()
    expected = [str(event.uuid) for event in events]
    backfilled = events.order_by("-id").first()  # the last one written
    # Page one on the primary (the standby lags past the limit), the next pages with no
    # limit: the token sends them to the primary until the standby has what page one saw.
    settings.COURSE_AUDIT_READ_MAX_LAG = 0.5
    time.sleep(0.6)
    first = api.get(path, per_page=3)
    seen = [event["id"] for event in api_events(first)]
    settings.COURSE_AUDIT_READ_MAX_LAG = None
    url = first["Link"]
    while (match := re.search(r'<([^>]*)>; rel="next"', url)) is not None:
        replication.forget_status()
        response = api.client.get(match.group(1), HTTP_AUTHORIZATION=f"Bearer {api.token}")
        seen += [event["id"] for event in api_events(response)]
        url = response["Link"]
    assert seen == expected
    # ... while the standby still lacked the backfill: read there, a page would have missed it.
    assert backfilled is not None
    assert not CourseEvent.objects.using("replica").filter(pk=backfilled.pk).exists()
