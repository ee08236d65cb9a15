"""Monthly partitions of the events table on PostgreSQL, and retention by whole months."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from course_audit import archives, partitions, services
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions need PostgreSQL"),
]


@pytest.fixture(autouse=True)
def _archives(settings, tmp_path):
    """A prune writes each month's archive first: to a directory of the test's own."""
    settings.COURSE_AUDIT_DIGEST_DIR = str(tmp_path / "store")


def dropped(**options) -> list[partitions.PartitionInfo]:
    return [part for part, _ in archives.prune(**options).dropped]


def partition_of(event_pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM course_audit_courseevent WHERE id = %s",
            [event_pk],
        )
        return str(cursor.fetchone()[0])


def names() -> list[str]:
    return [part.name for part in partitions.list_partitions()]


def rename_at(course: Course, when: dt.datetime, name: str) -> CourseEvent:
    with audit_context(occurred_at=when):
        services.course_update(course=course, name=name)
    return CourseEvent.objects.filter(course=course).order_by("-id")[0]


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("course_audit_partitions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_migrate_leaves_a_partitioned_table_with_the_coming_months_and_a_default():
    assert partitions.is_partitioned()
    this_month = partitions.month_start(timezone.now())
    expected = [
        partitions.month_partition_name(partitions.add_months(this_month, n))
        for n in range(partitions.MONTHS_AHEAD + 1)
    ]
    assert names() == [*expected, partitions.DEFAULT_PARTITION]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = 'course_audit_courseevent'::regclass AND i.indisprimary"
        )
        assert sorted(row[0] for row in cursor.fetchall()) == ["created_at", "id"]


def test_an_event_goes_to_its_month_and_the_model_reads_it_back(course):
    event = CourseEvent.objects.filter(course=course).get()
    month = partitions.month_start(event.created_at)
    assert partition_of(event.pk) == partitions.month_partition_name(month)
    assert CourseEvent.objects.get(pk=event.pk).event_type == "created"


def test_an_event_no_month_covers_lands_in_the_default_and_moves_when_its_month_is_made(
    course,
):
    far = dt.datetime(2031, 5, 2, 8, 0, tzinfo=dt.UTC)
    event = rename_at(course, far, "From the future")
    assert partition_of(event.pk) == partitions.DEFAULT_PARTITION

    made = partitions.ensure_partitions(start=far)
    assert partitions.month_partition_name(far) in made
    assert partition_of(event.pk) == f"{partitions.TABLE}_p203105"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT_PARTITION}")
        assert cursor.fetchone()[0] == 0
    # Made again, nothing new: every month is there already.
    assert partitions.ensure_partitions(start=far) == []
    assert CourseEvent.objects.filter(course=course, created_at=far).get().pk == event.pk


def test_backfilled_months_get_partitions_with_from(course):
    out, _ = run("--from", "2025-01")
    assert f"made {partitions.TABLE}_p202501" in out
    assert f"{partitions.TABLE}_p202506: 2025-06-01 to 2025-07-01" in out
    event = rename_at(course, dt.datetime(2025, 6, 15, tzinfo=dt.UTC), "Backfilled")
    assert partition_of(event.pk) == f"{partitions.TABLE}_p202506"


def month_ago(months: int, day: int = 10) -> dt.datetime:
    """A moment ``months`` calendar months before this one (the real clock: the command's)."""
    return partitions.add_months(partitions.month_start(timezone.now()), -months).replace(day=day)


def part(months: int) -> str:
    return partitions.month_partition_name(month_ago(months, 1))


def span(months: int) -> str:
    return f"({month_ago(months, 1):%Y-%m-%d} to {month_ago(months - 1, 1):%Y-%m-%d})"


@pytest.fixture
def history(course: Course) -> dict[int, CourseEvent]:
    """Events 16, 15 (three of them), 14 and 1 month(s) ago, in their own partitions."""
    partitions.ensure_partitions(start=month_ago(18))
    events = {
        ago: rename_at(course, month_ago(ago), f"{ago} months ago") for ago in (16, 15, 14, 1)
    }
    for day in (11, 12):
        rename_at(course, month_ago(15, day), f"15 months ago, day {day}")
    return events


def test_prune_dry_run_lists_the_expired_months_with_their_rows_and_drops_nothing(history):
    before = names()
    expired = dropped(keep_months=14, dry_run=True)
    # Whatever today's day, the months 15 and 16 back lie wholly beyond 14 months; the
    # month 14 back does not.
    assert [(p.name, p.rows) for p in expired][-2:] == [(part(16), 1), (part(15), 3)]
    assert part(14) not in [p.name for p in expired]
    assert names() == before
    assert CourseEvent.objects.filter(pk=history[16].pk).exists()


def test_prune_detaches_and_drops_whole_months_and_keeps_the_rest(history):
    expired = dropped(keep_months=14)
    gone = {p.name for p in expired}
    assert {part(16), part(15), part(18)} <= gone
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", [list(gone)])
        assert cursor.fetchone()[0] == 0  # dropped, not merely detached
    assert not CourseEvent.objects.filter(pk__in=[history[16].pk, history[15].pk]).exists()
    assert CourseEvent.objects.filter(pk__in=[history[14].pk, history[1].pk]).count() == 2
    assert dropped(keep_months=14) == []


def test_the_command_prunes_by_the_retention_setting(history, settings):
    settings.COURSE_AUDIT_RETENTION_MONTHS = 14
    out, _ = run("--prune", "--dry-run")
    assert f"would drop {part(15)} {span(15)}: 3 rows" in out
    assert part(15) in names()

    out, _ = run("--prune", "--keep-months", "16")  # the option wins over the setting
    assert f"dropped {part(17)} {span(17)}: 0 rows" in out
    assert part(16) in names()

    out, _ = run("--prune")
    assert f"dropped {part(16)} {span(16)}: 1 rows" in out
    assert f"dropped {part(15)} {span(15)}: 3 rows" in out
    assert part(15) not in names() and part(14) in names()
    assert CourseEvent.objects.filter(pk=history[1].pk).exists()


def test_rows_stranded_in_the_default_partition_are_reported_not_deleted(course):
    long_ago = dt.datetime(2019, 3, 1, tzinfo=dt.UTC)
    event = rename_at(course, long_ago, "Before partitions")
    assert partition_of(event.pk) == partitions.DEFAULT_PARTITION
    _, err = run("--prune", "--keep-months", "14")
    assert "1 rows older than" in err and "--from YYYY-MM" in err
    assert CourseEvent.objects.filter(pk=event.pk).exists()


def test_retention_off_refuses_a_prune_without_a_count(settings):
    settings.COURSE_AUDIT_RETENTION_MONTHS = None
    with pytest.raises(CommandError, match="--keep-months"):
        run("--prune")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-13"], "--from must be a month as YYYY-MM"),
        (["--prune", "--keep-months", "0"], "positive whole number"),
        (["--dry-run"], "go with --prune"),
        (["--ahead", "-1"], "--ahead must be 0 or more"),
        (["--database", "nowhere"], "no database alias 'nowhere'"),
    ],
)
def test_bad_arguments_are_named(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_prune_needs_at_least_one_month():
    with pytest.raises(ValueError, match="at least 1"):
        archives.prune(keep_months=0)


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (dt.datetime(2026, 3, 31, tzinfo=dt.UTC), -1, dt.datetime(2026, 2, 28, tzinfo=dt.UTC)),
        (dt.datetime(2026, 1, 15, tzinfo=dt.UTC), -14, dt.datetime(2024, 11, 15, tzinfo=dt.UTC)),
        (dt.datetime(2026, 11, 30, tzinfo=dt.UTC), 3, dt.datetime(2027, 2, 28, tzinfo=dt.UTC)),
        (dt.datetime(2026, 12, 1, tzinfo=dt.UTC), 1, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_months_are_calendar_months(moment, months, expected):
    assert partitions.add_months(moment, months) == expected


def test_check_w003_warns_when_next_month_has_no_partition():
    from django.core import checks

    def warnings() -> set[str]:
        return {
            m.id
            for m in checks.run_checks(databases=["default"])
            # W004 (no signing key) is tests/test_checks.py's.
            if m.id.startswith("course_audit") and m.id != "course_audit.W004"
        }

    assert warnings() == set()
    next_month = partitions.add_months(partitions.month_start(timezone.now()), 1)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {partitions.month_partition_name(next_month)}")
    assert warnings() == {"course_audit.W003"}
    run()  # the daily job
    assert warnings() == set()
