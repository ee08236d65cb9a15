"""PostgreSQL serves a page of events from the (scope, created_at, id) index.

With 20,000 events in one course over two months (and more elsewhere), the events query
of page one and of a page 15,000 events deep is a ``Limit`` over index scans of
``course_audit_evt_course_idx`` (``course_audit_evt_account_idx`` for an account) in
each month partition it reaches, each reading at most one page of rows: the cursor is an
index condition, the months after it are pruned, nothing is sorted and nothing is
skipped with OFFSET. The SQL is the one a real API request ran.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from psycopg import sql as psql

from course_audit import partitions
from course_audit.context import audit_context
from course_audit.models import AccessRecord, Account, Course, CourseEvent, Role
from course_audit.pagination import Cursor

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="query plans are PostgreSQL's"),
]

T0 = dt.datetime(2025, 3, 20, 12, 0, 0, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=35)  # every course's events run from March into April
EVENTS = 20_000
DEPTH = 15_000
PER_PAGE = 10


def load_events(course: Course, count: int) -> None:
    """``count`` events for ``course``, four to a timestamp (as a SIS import writes them),
    in their month partitions."""
    partitions.ensure_partitions(start=T0)
    CourseEvent.objects.bulk_create(
        (
            CourseEvent(
                course=course,
                account_id=course.account_id,
                created_at=T0 + SPAN * (index // 4) / (count // 4),
                event_type=CourseEvent.EventType.UPDATED,
                event_source=CourseEvent.EventSource.SIS,
                event_data={"name": [f"v{index}", f"v{index + 1}"]},
            )
            for index in range(count)
        ),
        batch_size=5000,
    )


@pytest.fixture
def subaccount(department: Account) -> Account:
    return Account.objects.create(name="Genetics", parent=department)


@pytest.fixture
def big_course(
    make_course: Callable[..., Course], college: Account, other_root: Account, subaccount: Account
) -> Course:
    with audit_context(occurred_at=T0 - dt.timedelta(days=1)):
        course = make_course(name="Biology 101")
        neighbour = make_course(name="Biology 102")
        elsewhere = make_course(name="Physics 101", account=college)
        rival = make_course(name="Rival 101", account=other_root)
        below = make_course(name="Genetics 201", account=subaccount)
    load_events(course, EVENTS)
    load_events(neighbour, 5_000)
    load_events(below, 5_000)
    load_events(elsewhere, 5_000)
    load_events(rival, 5_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE course_audit_courseevent")
    return course


@pytest.fixture
def api(caller: Callable[..., Any], root_account: Account, admin_role: Role) -> Any:
    return caller("auditor", (root_account, admin_role))


def events_query(api: Any, path: str, **params: Any) -> tuple[str, dict[str, Any]]:
    """The SQL of the events query a real request ran, and the response body."""
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path, per_page=PER_PAGE, **params)
    assert response.status_code == 200, response.content
    [sql] = [
        query["sql"]
        for query in captured.captured_queries
        if 'FROM "course_audit_courseevent"' in query["sql"]
    ]
    return sql, response.json()


def plan_of(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql)
        [[document]] = cursor.fetchall()
    if isinstance(document, str):
        document = json.loads(document)
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


TABLE = "course_audit_courseevent"


def scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's reads of the events table: of its partitions, or of the table itself."""
    return [
        node
        for node in nodes(plan)
        if node.get("Relation Name", "") == TABLE
        or node.get("Relation Name", "").startswith(f"{TABLE}_")
    ]


def index_and_its_partitions(index: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            [index],
        )
        return {index, *(row[0] for row in cursor.fetchall())}


def assert_served_by_index(sql: str, index: str, *, deep: dt.datetime | None = None) -> None:
    """``deep``: the cursor's time, for a page past the first."""
    assert "OFFSET" not in sql.upper()
    whole = plan_of(sql)
    # The page's rows are chosen under a Limit, on the index, with no sort; only they are
    # joined to their links and put in order again (a sort of one page at most).
    limits = [node for node in nodes(whole) if node["Node Type"] == "Limit"]
    assert limits, whole
    plan = limits[0]
    assert all(
        node["Actual Rows"] <= PER_PAGE + 1 for node in nodes(whole) if "Sort" in node["Node Type"]
    ), whole
    kinds = [node["Node Type"] for node in nodes(plan)]
    assert not any("Sort" in kind for kind in kinds), kinds
    family = index_and_its_partitions(index)
    reads = scans(plan)
    assert reads, plan
    read = 0
    for scan in reads:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        assert scan.get("Rows Removed by Filter", 0) == 0, scan
        if scan["Actual Rows"]:  # (an empty month's scan may take any index)
            assert scan["Index Name"] in family, scan
        read += scan["Actual Rows"] * scan["Actual Loops"]
        if deep:
            # The cursor is an index condition: each scan starts at the cursor.
            assert "created_at" in scan["Index Cond"], scan
    # One page (and the row that tells whether there is a next one) from each month
    # reached, not the whole scope.
    assert PER_PAGE + 1 <= read <= (PER_PAGE + 1) * len(reads), reads
    if deep:
        # The months after the cursor's are pruned: not read at all.
        later = partitions.month_partition_name(partitions.add_months(deep, 1))
        assert later.endswith(("_p202504", "_p202505"))
        assert all(scan["Relation Name"] < later for scan in reads), reads


def deep_cursor(path: str, events: Any) -> tuple[str, CourseEvent, dt.datetime]:
    """A page token ``DEPTH`` events deep, the first event of that page, the token's time."""
    ordered = events.order_by("-created_at", "-id")
    last = ordered[DEPTH - 1]
    return Cursor(path).encode(last.created_at, last.pk), ordered[DEPTH], last.created_at


def test_course_pages_use_the_course_index(api: Any, big_course: Course) -> None:
    path = f"/api/v1/audit/course/courses/{big_course.pk}"

    sql, _ = events_query(api, path)
    assert_served_by_index(
        sql,
        "course_audit_evt_course_idx",
    )

    token, first, at = deep_cursor(path, CourseEvent.objects.filter(course=big_course))
    sql, body = events_query(api, path, page=token)
    assert body["events"][0]["id"] == str(first.uuid)
    assert_served_by_index(sql, "course_audit_evt_course_idx", deep=at)


def test_account_pages_use_the_account_index(
    api: Any, big_course: Course, department: Account
) -> None:
    path = f"/api/v1/audit/course/accounts/{department.pk}"

    sql, _ = events_query(api, path)
    assert_served_by_index(
        sql,
        "course_audit_evt_account_idx",
    )

    token, first, at = deep_cursor(path, CourseEvent.objects.filter(account=department))
    sql, body = events_query(api, path, page=token)
    assert body["events"][0]["id"] == str(first.uuid)
    assert_served_by_index(sql, "course_audit_evt_account_idx", deep=at)


def rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows the plan's scans of ``table`` read, kept or filtered away."""
    return sum(
        (
            node["Actual Rows"]
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Index Recheck", 0)
        )
        * node["Actual Loops"]
        for node in scans(plan)
        if node.get("Relation Name", "").startswith(table)
    )


def test_subaccount_pages_read_at_most_a_page_per_account(
    api: Any, big_course: Course, department: Account, subaccount: Account
) -> None:
    path = f"/api/v1/audit/course/accounts/{department.pk}"
    accounts = 2  # the department and its sub-account

    sql, _ = events_query(api, path, include_subaccounts="true")
    plan = plan_of(sql)

    # Each account's range is read with its own LIMITed index scan (PER_PAGE + 1 rows at
    # most from each of the two months), then the candidates are fetched once more by
    # primary key to be merged.
    months = 2
    bound = (months + 1) * (PER_PAGE + 1) * accounts
    assert 0 < rows_read(plan, TABLE) <= bound, plan

    # As deep as the department's own events go, a page still reads one page per account,
    # and it is the right page of the merged order.
    merged = CourseEvent.objects.filter(account__in=[department, subaccount])
    token, first, _ = deep_cursor(path, merged)
    sql, body = events_query(api, path, include_subaccounts="true", page=token)
    assert body["events"][0]["id"] == str(first.uuid)
    assert 0 < rows_read(plan_of(sql), TABLE) <= bound


def test_the_prepared_page_keeps_its_plan_generic_and_still_prunes_months(
    api: Any, big_course: Course, settings: Any
) -> None:
    """``COURSE_AUDIT_PREPARED_STATEMENTS`` with ``plan_cache_mode=force_generic_plan`` (the
    demo's): the deep page's statement, as the request prepared it, is planned once for any
    course and cursor, yet reads the course's index only in the months the cursor reaches
    (pruned when it runs: ``Subplans Removed``), one page from each."""
    settings.COURSE_AUDIT_PREPARED_STATEMENTS = True
    path = f"/api/v1/audit/course/courses/{big_course.pk}"
    token, first, at = deep_cursor(path, CourseEvent.objects.filter(course=big_course))
    _, body = events_query(api, path, page=token)
    assert body["events"][0]["id"] == str(first.uuid)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, parameter_types::text[] FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ['%AS (SELECT * FROM "course_audit_courseevent"%'],
        )
        [(statement, types)] = cursor.fetchall()
        assert "$4" in statement and "LIMIT 11" in statement
        position = Cursor(path).decode(token)
        # The page's parameters, then its access record's (it rides on the statement):
        # those the request wrote.
        record = AccessRecord.objects.order_by("-id").first()
        values = [
            big_course.pk,
            position[0],
            position[1],
            position[0],
            *(
                field.get_db_prep_save(getattr(record, field.attname), connection)
                for field in AccessRecord._meta.concrete_fields
                if field.attname not in ("id", "count")
            ),
        ]
        assert len(types) == len(values)
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE test_deep_page AS {statement}")
        try:
            # Literals, not parameters: a utility statement takes none, and a connection
            # that binds on the server (prepare_threshold) would send them as such.
            raw = connection.connection
            arguments = ", ".join(
                f"{psql.Literal(value).as_string(raw)}::{kind}"
                for value, kind in zip(values, types, strict=True)
            )
            explain = "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) EXECUTE test_deep_page"
            cursor.execute(f"{explain}({arguments})")
            [[document]] = cursor.fetchall()
        finally:
            cursor.execute("DEALLOCATE test_deep_page")
    if isinstance(document, str):
        document = json.loads(document)
    whole = document[0]["Plan"]
    removed = [node["Subplans Removed"] for node in nodes(whole) if "Subplans Removed" in node]
    assert removed and removed[0] > 0, whole
    family = index_and_its_partitions("course_audit_evt_course_idx")
    reads = scans(whole)
    later = partitions.month_partition_name(partitions.add_months(at, 1))
    assert reads and all(scan["Relation Name"] < later for scan in reads), reads
    for scan in reads:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        if scan["Actual Rows"]:
            assert scan["Index Name"] in family, scan
    assert sum(scan["Actual Rows"] for scan in reads) <= (PER_PAGE + 1) * len(reads)
