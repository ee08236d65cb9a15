"""Who looked (issue #17, item 4): every read of audit data writes one access record, in
one INSERT; a read whose record cannot be written is refused (503); the tenant's root
admins read the records on the access log page; the table is append-only and partitioned
on PostgreSQL, pruned by its own retention."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.signals import request_finished
from django.db import (
    IntegrityError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from course_audit import access_log, partitions, services, views
from course_audit.models import AccessRecord, Account, ApiToken, Course, PageView, Role

pytestmark = pytest.mark.django_db

ACCESS_INSERT = 'INSERT INTO "course_audit_accessrecord"'
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions and triggers need PostgreSQL"
)


@pytest.fixture
def history(course: Course) -> Course:
    for index in range(3):
        services.course_update(course=course, name=f"Biology 101 v{index}")
    return course


def only_record() -> AccessRecord:
    records = list(AccessRecord.objects.all())
    assert len(records) == 1, records
    return records[0]


def read(client: Client, path: str, **params: Any) -> tuple[Any, list[str]]:
    """The response to a GET (streamed content read to its end) and its SQL."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, params)
        if response.streaming:  # read to its end (which closes it, as a server does)
            response.content_bytes = b"".join(response.streaming_content)
    return response, [query["sql"] for query in captured.captured_queries]


# --- one record per read, in one INSERT ----------------------------------------------------


def test_a_course_page_writes_one_record_of_what_was_read(registrar_browser, history):
    path = reverse("course_audit:course_history", args=[history.pk])
    response, sql = read(
        registrar_browser, path, event_type="updated", per_page="10", start_time="2000-01-01"
    )

    assert response.status_code == 200
    assert sum(query.startswith(ACCESS_INSERT) for query in sql) == 1
    record = only_record()
    assert (record.surface, record.scope, record.scope_id) == ("page", "course", str(history.pk))
    assert record.root_account_id == history.root_account_id
    assert record.user_id == registrar_browser.user.pk
    assert record.user_name == registrar_browser.user.get_username()
    assert record.api_token_id is None
    assert record.count == 3  # the three updates
    assert record.complete is True
    assert record.filters == {
        "event_type": "updated",
        "per_page": "10",
        "start_time": "2000-01-01",
    }
    assert (record.http_method, record.path) == ("GET", path)
    assert record.client_addr == "127.0.0.1"
    assert str(record.request_id) == response["X-Request-Id"]


def test_an_account_page_with_its_subaccounts(registrar_browser, history, college):
    response, _ = read(
        registrar_browser,
        reverse("course_audit:account_history", args=[college.pk]),
        include_subaccounts="1",
        event_source=["manual", "api"],
    )
    assert response.status_code == 200
    record = only_record()
    assert (record.scope, record.scope_id, record.count) == ("account", str(college.pk), 4)
    assert record.root_account_id == college.root_account_id
    assert record.filters == {"include_subaccounts": "1", "event_source": ["manual", "api"]}


def test_a_page_view_page(registrar_browser, course):
    request_id = uuid.uuid4()
    from course_audit.context import audit_context

    with audit_context(request_id=request_id):
        services.course_update(course=course, name="Renamed")
    PageView.objects.create(
        request_id=request_id,
        url="http://x/",
        http_method="PUT",
        account=course.account,
        context_type="Course",
        context_id=course.pk,
    )
    response, _ = read(registrar_browser, reverse("course_audit:page_view", args=[request_id]))
    assert response.status_code == 200
    record = only_record()
    assert (record.scope, record.scope_id, record.count) == ("request", str(request_id), 1)
    assert record.root_account_id == course.root_account_id


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_export_is_recorded_when_its_stream_ends(registrar_browser, history, kind):
    response, sql = read(
        registrar_browser,
        reverse("course_audit:course_export", args=[history.pk]),
        format=kind,
    )
    assert response.status_code == 200
    lines = response.content_bytes.decode().splitlines()
    assert len(lines) == 4 + (kind == "csv")
    assert sum(query.startswith(ACCESS_INSERT) for query in sql) == 1
    record = only_record()
    assert (record.surface, record.scope, record.count, record.complete) == (
        "export",
        "course",
        4,
        True,
    )
    assert record.filters == {"format": kind}


def test_an_export_cut_short_says_so(registrar_browser, history, rf):
    request = rf.get(reverse("course_audit:course_export", args=[history.pk]), {"format": "jsonl"})
    request.user = registrar_browser.user
    request.session = {}
    response = views.course_export(request, history.pk)
    next(iter(response))  # one row read, then the client goes away
    assert not AccessRecord.objects.exists()
    # The server closes the response; request_finished would close the test's connection.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)

    record = only_record()
    assert (record.count, record.complete) == (1, False)
    assert (record.user_id, record.scope_id) == (registrar_browser.user.pk, str(history.pk))


def test_an_export_whose_record_fails_at_the_end_is_sent_and_the_failure_logged(
    registrar_browser, history, refused, caplog
):
    response, _ = read(
        registrar_browser,
        reverse("course_audit:course_export", args=[history.pk]),
        format="jsonl",
    )
    assert response.status_code == 200
    assert len(response.content_bytes.splitlines()) == 4
    assert "could not be written" in caplog.text


def test_an_api_listing_by_token_names_the_token(api_client_factory, history):
    client, token = api_client_factory()
    response = client.get(f"/api/v1/audit/course/courses/{history.pk}", {"per_page": "2"})
    assert response.status_code == 200
    record = only_record()
    assert (record.surface, record.scope, record.count) == ("api", "course", 2)
    assert record.api_token_id == token.pk
    assert record.user_id == token.user_id
    assert record.filters == {"per_page": "2"}


def test_an_api_account_listing(api_client_factory, history, department):
    client, _ = api_client_factory()
    response = client.get(f"/api/v1/audit/course/accounts/{department.pk}")
    assert response.status_code == 200
    record = only_record()
    assert (record.scope, record.scope_id, record.count) == ("account", str(department.pk), 4)
    assert record.root_account_id == department.root_account_id


def test_refused_and_invalid_reads_write_nothing(
    registrar_browser, dept_admin_browser, history, chemistry, api_client_factory
):
    assert (
        dept_admin_browser.get(
            reverse("course_audit:account_history", args=[chemistry.pk])
        ).status_code
        == 403
    )
    assert (
        registrar_browser.get(reverse("course_audit:course_history", args=[10**9])).status_code
        == 404
    )
    bad_filter = registrar_browser.get(
        reverse("course_audit:course_history", args=[history.pk]), {"start_time": "soon"}
    )
    assert bad_filter.status_code == 400
    client, _ = api_client_factory()
    assert client.get("/api/v1/audit/course/courses/999999999").status_code == 404
    assert not AccessRecord.objects.exists()


def test_the_setting_turns_it_off(registrar_browser, history, settings):
    settings.COURSE_AUDIT_ACCESS_LOG = False
    response, sql = read(
        registrar_browser, reverse("course_audit:course_history", args=[history.pk])
    )
    assert response.status_code == 200
    assert not any(query.startswith(ACCESS_INSERT) for query in sql)
    response, _ = read(
        registrar_browser,
        reverse("course_audit:course_export", args=[history.pk]),
        format="csv",
    )
    assert len(response.content_bytes.decode().splitlines()) == 5
    assert not AccessRecord.objects.exists()


def test_the_query_string_is_kept_bounded(registrar_browser, history):
    params = {f"p{index}": "x" * 5000 for index in range(50)}
    params["nul"] = "a\x00b"
    response, _ = read(
        registrar_browser, reverse("course_audit:course_history", args=[history.pk]), **params
    )
    assert response.status_code == 200
    filters = only_record().filters
    assert len(filters) == access_log.MAX_FILTERS
    assert all(len(value) <= access_log.MAX_FILTER_LENGTH for value in filters.values())


# --- record or refuse ----------------------------------------------------------------------


def _fail_records(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if ACCESS_INSERT in sql:  # alone, or riding on an API page's statement
        raise OperationalError("the access log cannot be written")
    return execute(sql, params, many, context)


@pytest.fixture
def refused() -> Iterator[None]:
    """Every access record's INSERT fails, as when the database refuses it."""
    with connection.execute_wrapper(_fail_records):
        yield


def test_a_page_whose_record_cannot_be_written_is_refused(registrar_browser, history, refused):
    response = registrar_browser.get(reverse("course_audit:course_history", args=[history.pk]))
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "Biology 101 v2" not in response.content.decode()


def test_an_api_listing_whose_record_cannot_be_written_is_refused(
    api_client_factory, history, refused
):
    client, _ = api_client_factory()
    response = client.get(f"/api/v1/audit/course/courses/{history.pk}")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "events" not in response.json()


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_api_page_whose_riding_record_the_database_refuses_is_not_served(
    api_client_factory, history
):
    """The record in the page's own statement: the database refusing it fails the read
    itself (a 503, no events), and nothing of the statement is kept."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_record() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no access records today'; END $$; "
            "CREATE TRIGGER test_refuse_record BEFORE INSERT ON course_audit_accessrecord "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_record()"
        )
    try:
        client, _ = api_client_factory()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/api/v1/audit/course/courses/{history.pk}")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_refuse_record ON course_audit_accessrecord; "
                "DROP FUNCTION test_refuse_record()"
            )
    assert response.status_code == 503
    assert "events" not in response.json()
    sql = [query["sql"] for query in captured.captured_queries]
    [page] = [query for query in sql if "course_audit_courseevent" in query]
    assert page.startswith("WITH") and ACCESS_INSERT in page
    assert not AccessRecord.objects.exists()


def test_the_admins_event_list_whose_record_cannot_be_written_is_refused(
    admin_client, history, refused
):
    response = admin_client.get(reverse("admin:course_audit_courseevent_changelist"))
    assert response.status_code == 503
    event = history.events.first()
    response = admin_client.get(reverse("admin:course_audit_courseevent_change", args=[event.pk]))
    assert response.status_code == 503


# --- the admin -----------------------------------------------------------------------------


def test_the_admins_event_list_writes_one_record_per_tenant_in_one_insert(
    admin_client, history, make_course
):
    other_root = Account.objects.create(name="Other University")
    other = make_course(account=other_root, name="Other 101")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(reverse("admin:course_audit_courseevent_changelist"))
    assert response.status_code == 200
    assert sum(q["sql"].startswith(ACCESS_INSERT) for q in captured.captured_queries) == 1
    records = {record.root_account_id: record for record in AccessRecord.objects.all()}
    assert set(records) == {history.root_account_id, other.root_account_id}
    assert records[history.root_account_id].count == 4
    assert records[other.root_account_id].count == 1
    assert {record.surface for record in records.values()} == {"admin"}
    assert {record.scope for record in records.values()} == {"events"}


def test_the_admins_event_page_and_the_access_records_admin(admin_client, history):
    event = history.events.first()
    response = admin_client.get(reverse("admin:course_audit_courseevent_change", args=[event.pk]))
    assert response.status_code == 200
    record = only_record()
    assert (record.scope, record.scope_id, record.count) == ("event", str(event.pk), 1)

    listing = admin_client.get(reverse("admin:course_audit_accessrecord_changelist"))
    assert listing.status_code == 200
    assert "registrar" not in listing.content.decode()
    page = admin_client.get(reverse("admin:course_audit_accessrecord_change", args=[record.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # read-only
    assert admin_client.get(reverse("admin:course_audit_accessrecord_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:course_audit_accessrecord_delete", args=[record.pk]))
    ).status_code == 403
    assert AccessRecord.objects.filter(pk=record.pk).exists()
    # Reading the access log is recorded too.
    assert set(AccessRecord.objects.values_list("scope", flat=True)) == {"event", "access_log"}


# --- the access log page -------------------------------------------------------------------


@pytest.fixture
def rival_root(db: None) -> Account:
    return Account.objects.create(name="Rival University")


def test_a_root_admin_reads_who_looked_at_the_tenant(
    registrar_browser, dept_admin_browser, browser, history, root_account, rival_root, admin_role
):
    dept_admin_browser.get(reverse("course_audit:course_history", args=[history.pk]))
    rival = browser("rival", (rival_root, admin_role))
    rival_course = services.course_create(account=rival_root, name="Rival 101")
    rival.get(reverse("course_audit:course_history", args=[rival_course.pk]))

    url = reverse("course_audit:access_log", args=[root_account.pk])
    response = registrar_browser.get(url)

    assert response.status_code == 200
    body = response.content.decode()
    assert "dept_admin" in body
    assert reverse("course_audit:course_history", args=[history.pk]) in body
    assert "rival" not in body and "Rival" not in body
    # The reading of the log is itself recorded, in the tenant.
    latest = AccessRecord.objects.order_by("-id").first()
    assert latest is not None
    assert (latest.scope, latest.scope_id, latest.root_account_id, latest.user_name) == (
        "access_log",
        str(root_account.pk),
        root_account.pk,
        registrar_browser.user.get_username(),
    )
    assert latest.count == 1  # the department admin's read; the rival's is another tenant's


def test_the_access_log_answers_the_access_rule(
    registrar_browser, dept_admin_browser, browser, root_account, rival_root, admin_role, department
):
    url = reverse("course_audit:access_log", args=[root_account.pk])
    assert dept_admin_browser.get(url).status_code == 403
    rival = browser("rival", (rival_root, admin_role))
    assert rival.get(url).status_code == 404
    # Only a root account has an access log.
    assert (
        registrar_browser.get(reverse("course_audit:access_log", args=[department.pk])).status_code
        == 404
    )
    assert (
        registrar_browser.get(reverse("course_audit:access_log", args=[10**9])).status_code == 404
    )
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    viewer_role = Role.objects.create(name="Auditor", view_course_changes=True)
    auditor = browser("auditor", (root_account, viewer_role))
    assert auditor.get(url).status_code == 200
    assert not AccessRecord.objects.filter(user_name="dept_admin").exists()


def test_the_access_log_filters_and_pages(registrar_browser, make_user, root_account, history):
    now = timezone.now()
    records = [
        AccessRecord(
            root_account=root_account,
            user_name=("alice" if index % 2 else "bob"),
            surface="api" if index % 3 == 0 else "page",
            scope="course",
            scope_id=str(history.pk),
            count=index,
            http_method="GET",
            path=f"/api/v1/audit/course/courses/{history.pk}",
            created_at=now - dt.timedelta(hours=index),
        )
        for index in range(1, 31)
    ]
    AccessRecord.objects.bulk_create(records)
    url = reverse("course_audit:access_log", args=[root_account.pk])

    def shown(response: Any) -> list[int]:
        return [int(pk) for pk in re.findall(r'data-record="(\d+)"', response.content.decode())]

    alice = registrar_browser.get(url, {"who": "alice", "per_page": "10"})
    assert alice.status_code == 200
    expected = [record.pk for record in records if record.user_name == "alice"]
    assert shown(alice) == expected[:10]
    older = re.search(r'href="\?([^"]+)" rel="next"', alice.content.decode())
    assert older is not None
    second = registrar_browser.get(url + "?" + older[1].replace("&amp;", "&"))
    assert shown(second) == expected[10:15]

    api_only = registrar_browser.get(url, {"surface": "api", "per_page": "100"})
    assert shown(api_only) == [r.pk for r in records if r.surface == "api"]
    yesterday = (now - dt.timedelta(days=1)).date().isoformat()
    since = registrar_browser.get(url, {"start_time": yesterday, "per_page": "100"})
    assert set(shown(since)) >= {r.pk for r in records if r.created_at.date() >= now.date()}
    assert registrar_browser.get(url, {"surface": "nowhere"}).status_code == 400
    assert registrar_browser.get(url, {"after": "forged"}).status_code == 400
    assert registrar_browser.get(url, {"who": "x" * 2000}).status_code == 400


def test_a_filter_parameter_named_like_a_dict_method_is_shown(registrar_browser, root_account):
    AccessRecord.objects.create(
        root_account=root_account,
        user_name="carol",
        surface="page",
        scope="account",
        scope_id=str(root_account.pk),
        filters={"items": "1", "keys": ["a", "b"]},
        count=0,
        http_method="GET",
        path="/audit/",
    )
    response = registrar_browser.get(reverse("course_audit:access_log", args=[root_account.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<code>items=1</code>" in body and "<code>keys=a, b</code>" in body


def test_the_root_accounts_history_links_its_access_log(registrar_browser, root_account, college):
    link = reverse("course_audit:access_log", args=[root_account.pk])
    root_page = registrar_browser.get(
        reverse("course_audit:account_history", args=[root_account.pk])
    )
    assert link in root_page.content.decode()
    college_page = registrar_browser.get(reverse("course_audit:account_history", args=[college.pk]))
    assert "access-log" not in college_page.content.decode()


# --- append-only, partitioned, pruned ------------------------------------------------------


def _a_record(**fields: Any) -> AccessRecord:
    return AccessRecord.objects.create(
        surface="page", scope="course", scope_id="1", count=1, http_method="GET", path="/", **fields
    )


@on_postgresql
def test_access_records_cannot_change_or_vanish():
    record = _a_record()
    refused = "access records are append-only: {}"
    with pytest.raises(IntegrityError, match=refused.format("UPDATE")), transaction.atomic():
        AccessRecord.objects.filter(pk=record.pk).update(count=0)
    with pytest.raises(IntegrityError, match=refused.format("DELETE")), transaction.atomic():
        AccessRecord.objects.filter(pk=record.pk).delete()
    for table in (
        partitions.ACCESS_RECORDS.name,
        partitions.ACCESS_RECORDS.default_partition,
        partitions.month_partition_name(
            partitions.month_start(record.created_at), partitions.ACCESS_RECORDS
        ),
    ):
        with (
            pytest.raises(IntegrityError, match=refused.format("TRUNCATE")),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SET LOCAL course_audit.allow_truncate = 'off'")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {table}")
    assert AccessRecord.objects.get(pk=record.pk).count == 1


@on_postgresql
def test_access_records_are_partitioned_by_month_and_pruned_by_their_own_retention(settings):
    table = partitions.ACCESS_RECORDS
    assert partitions.is_partitioned(table=table)
    this_month = partitions.month_start(timezone.now())
    names = [part.name for part in partitions.list_partitions(table=table)]
    assert partitions.month_partition_name(this_month, table) in names
    assert names[-1] == table.default_partition

    old_month = partitions.add_months(this_month, -30)
    recent_month = partitions.add_months(this_month, -20)
    partitions.ensure_partitions(start=old_month, table=table)
    old = _a_record(created_at=old_month + dt.timedelta(days=3))
    recent = _a_record(created_at=recent_month + dt.timedelta(days=3))

    settings.COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS = 24
    out = StringIO()
    call_command("course_audit_partitions", "--prune", "--dry-run", stdout=out)
    assert f"would drop {partitions.month_partition_name(old_month, table)}" in out.getvalue()
    assert AccessRecord.objects.filter(pk=old.pk).exists()

    out = StringIO()
    call_command("course_audit_partitions", "--prune", stdout=out)
    assert f"dropped {partitions.month_partition_name(old_month, table)}" in out.getvalue()
    assert not AccessRecord.objects.filter(pk=old.pk).exists()
    assert AccessRecord.objects.filter(pk=recent.pk).exists()
    assert partitions.month_partition_name(recent_month, table) in [
        part.name for part in partitions.list_partitions(table=table)
    ]
    # The events keep their own retention: none of their months went.
    assert partitions.is_partitioned()


@on_postgresql
def test_check_w003_warns_when_next_month_has_no_access_records_partition():
    from django.core import checks

    def warnings() -> list[str]:
        return [
            str(message.msg)
            for message in checks.run_checks(databases=["default"])
            if message.id == "course_audit.W003"
        ]

    assert warnings() == []
    next_month = partitions.add_months(partitions.month_start(timezone.now()), 1)
    name = partitions.month_partition_name(next_month, partitions.ACCESS_RECORDS)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {name}")
    [warning] = warnings()
    assert warning.startswith("No partition of the access records table on 'default' covers")
    call_command("course_audit_partitions", stdout=StringIO())  # the daily job
    assert warnings() == []


def test_prune_refuses_less_than_a_month():
    with pytest.raises(ValueError, match="at least 1"):
        access_log.prune("default", keep_months=0)


@pytest.fixture
def api_client_factory(make_user: Callable[..., Any], grant: Callable[..., Any], root_account):
    def make() -> tuple[Client, ApiToken]:
        user = make_user()
        grant(user, root_account)
        token, plaintext = ApiToken.issue(user=user)
        return Client(headers={"Authorization": f"Bearer {plaintext}"}), token

    return make


def test_the_access_log_page_in_spanish(registrar_browser, root_account, history):
    registrar_browser.get(reverse("course_audit:course_history", args=[history.pk]))
    response = registrar_browser.get(
        reverse("course_audit:access_log", args=[root_account.pk]), HTTP_ACCEPT_LANGUAGE="es"
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Registro de accesos de State University" in page
    assert "Quién (nombre de usuario)" in page
    assert "4 eventos" in page


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_record_is_one_statement(
    make_user, grant, root_account, make_course
):
    """As a site runs it (autocommit, no test transaction around the request): the record
    is one INSERT, with no BEGIN and COMMIT of its own; on PostgreSQL, in the page's own
    statement (one round trip: the page and its record commit together)."""
    course = make_course(name="Biology 101")
    user = make_user()
    grant(user, root_account)
    _, plaintext = ApiToken.issue(user=user)
    client = Client(headers={"Authorization": f"Bearer {plaintext}"})
    path = f"/api/v1/audit/course/courses/{course.pk}"
    client.get(path)  # the token's first use writes its last_used_at

    response, sql = read(client, path)

    assert response.status_code == 200
    [write] = [query for query in sql if ACCESS_INSERT in query]
    assert [query for query in sql if not query.startswith(("SELECT", "WITH"))] == [
        query for query in sql if query.startswith(ACCESS_INSERT)
    ]
    if connection.vendor == "postgresql":
        assert write.startswith('WITH "course_audit_page" AS (SELECT')
        assert len(sql) == 3
    else:
        assert write.startswith(ACCESS_INSERT)
        assert len(sql) == 3 + 1
    assert [record.count for record in AccessRecord.objects.all()] == [1, 1]


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("synchronous", [False, True])
def test_outside_a_transaction_the_records_commit_waits_for_no_flush_unless_asked(
    make_user, grant, root_account, make_course, settings, synchronous
):
    """The record's own commit waits for no disk flush (it would cost more than the read),
    in the same statement and for that statement alone; ``synchronous`` restores the wait."""
    settings.COURSE_AUDIT_ACCESS_LOG_SYNCHRONOUS_COMMIT = synchronous
    course = make_course(name="Biology 101")
    user = make_user()
    grant(user, root_account)
    _, plaintext = ApiToken.issue(user=user)
    client = Client(headers={"Authorization": f"Bearer {plaintext}"})
    path = f"/api/v1/audit/course/courses/{course.pk}"
    client.get(path)

    response, sql = read(client, path)

    assert response.status_code == 200
    [insert] = [query for query in sql if ACCESS_INSERT in query]
    assert ("'synchronous_commit', 'off', true" in insert) is not synchronous
    record = AccessRecord.objects.order_by("-id").first()
    assert (record.user_id, record.scope_id, record.count, record.path) == (
        user.pk,
        str(course.pk),
        1,
        path,
    )
    assert record.filters == {} and record.api_token_id is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)


def test_the_home_pages_recent_activity_is_recorded_per_tenant(
    registrar_browser, history, make_user
):
    registrar_browser.get(reverse("course_audit:home"))
    record = only_record()
    assert (record.surface, record.scope, record.count) == ("page", "recent", 4)
    assert record.root_account_id == history.root_account_id
    # A search shows courses, not events: no record.
    registrar_browser.get(reverse("course_audit:home"), {"q": "Biology"})
    assert AccessRecord.objects.count() == 1
    # Nothing to show, nothing recorded.
    nobody = Client()
    nobody.force_login(make_user("nobody"))
    assert nobody.get(reverse("course_audit:home")).status_code == 200
    assert AccessRecord.objects.count() == 1


def test_the_as_of_page_and_endpoint_record_the_events_they_show(
    registrar_browser, api_client_factory, history
):
    response = registrar_browser.get(reverse("course_audit:course_as_of", args=[history.pk]))
    assert response.status_code == 200
    record = only_record()
    # The values shown were set by the creation and the last rename.
    assert (record.surface, record.scope, record.scope_id, record.count) == (
        "page",
        "course",
        str(history.pk),
        2,
    )
    client, token = api_client_factory()
    at = timezone.now().isoformat()
    response = client.get(f"/api/v1/audit/course/courses/{history.pk}/as_of", {"at": at})
    assert response.status_code == 200
    api = AccessRecord.objects.get(surface="api")
    assert (api.scope, api.count, api.api_token_id) == ("course", 2, token.pk)
    assert api.filters == {"at": at}


def test_a_persons_page_records_one_read_per_tenant_shown(
    admin_client, history, make_user, make_course
):
    from course_audit.context import audit_context

    actor = make_user("actor")
    other_root = Account.objects.create(name="Other University")
    other = make_course(account=other_root, name="Other 101")
    with audit_context(user=actor):
        services.course_update(course=history, name="By the actor")
        services.course_update(course=other, name="Also by the actor")
    response = admin_client.get(reverse("course_audit:person_history", args=[actor.pk]))
    assert response.status_code == 200
    records = {record.root_account_id: record for record in AccessRecord.objects.all()}
    assert set(records) == {history.root_account_id, other_root.pk}
    assert {(r.scope, r.scope_id, r.count) for r in records.values()} == {
        ("person", str(actor.pk), 1)
    }


def test_in_read_only_mode_the_record_goes_to_the_log(registrar_browser, history, rf, caplog):
    """The primary is away and the site serves reads from its standby (replication): no
    write can succeed, so the record is logged, with every field, and the page served."""
    from course_audit import replication

    request = rf.get(reverse("course_audit:course_history", args=[history.pk]), {"per_page": "10"})
    request.user = registrar_browser.user
    with replication.reading(request, read_only=True), CaptureQueriesContext(connection) as sql:
        access_log.record(
            request,
            surface="page",
            target=access_log.Target("course", history.pk, history.root_account_id),
            count=4,
        )
    assert not any(query["sql"].startswith(ACCESS_INSERT) for query in sql.captured_queries)
    assert not AccessRecord.objects.exists()
    [message] = [r for r in caplog.records if r.name == "course_audit.access_log"]
    assert message.levelname == "WARNING"
    logged = message.access_record  # type: ignore[attr-defined]
    assert (logged["scope"], logged["scope_id"], logged["count"]) == ("course", str(history.pk), 4)
    assert logged["user_name"] == registrar_browser.user.get_username()
    assert logged["filters"] == {"per_page": "10"}
