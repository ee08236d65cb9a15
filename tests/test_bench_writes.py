"""The benchmark's write section (bench/_writes.py): recording off records nothing on
either recorder's terms, each path is checked against the events it should record, and
the section's figures and verdicts follow from the numbers."""

from __future__ import annotations

import re
import types
from typing import Any

import pytest
from django.db import connection, models, transaction
from django.db.models import Value
from django.db.models.functions import Concat

from bench import _writes
from bench._report import TIMES
from course_audit.models import Account, Course, CourseEvent

FIGURES: dict[str, Any] = {
    "courses": 20_000,
    "rounds": 2,
    "saves": {
        "n": 300,
        "audited_p50_ms": 2.6,
        "audited_p95_ms": 4.0,
        "unaudited_p50_ms": 2.0,
        "unaudited_p95_ms": 2.5,
    },
    "sis_import": {"events": 30_000, "audited_seconds": 1.2, "unaudited_seconds": 0.6},
    "update": {"events": 20_000, "audited_seconds": 2.0, "unaudited_seconds": 0.5},
    "bulk_update": {"events": 20_000, "audited_seconds": 1.0, "unaudited_seconds": 0.4},
    "bulk_create": {"events": 20_000, "audited_seconds": 0.8, "unaudited_seconds": 0.5},
}

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the benchmark needs PostgreSQL"
)


def test_the_checks_are_the_issues_targets_with_their_figures():
    checks = _writes.checks(FIGURES)
    assert [(check.value, check.target.describe(), check.met) for check in checks] == [
        (pytest.approx(1.3), f"≤ 1.30{TIMES}", True),
        (pytest.approx(2.5), f"≤ 2{TIMES}", False),
        (20_000, "≥ 25,000 events/s", False),
        (25_000, "≥ 20,000 events/s", True),
    ]
    assert checks[0].row()[1:3] == ["2.60 ms", "2.00 ms"]
    assert checks[1].target.verdict(checks[1].value) == "**missed** by 25 %"
    assert checks[2].row()[1] == "20,000 events in 1.00 s"
    assert "SIS import of 20,000 new courses" in checks[3].what


def test_the_comparison_table_gives_each_path_both_kinds_and_their_ratio():
    lines = _writes.comparison_table(FIGURES).splitlines()
    assert "over 20,000 courses" in lines[0] and "mean of 2 run(s)" in lines[0]
    assert lines[-5:] == [
        f"| `course.save()` of one field, p50 (p95), 300 of each | 2.60 ms (4.00 ms) "
        f"| 2.00 ms (2.50 ms) | 1.30{TIMES} (1.60{TIMES}) |",
        f"| SIS import of new courses | 25,000 events/s (1.20 s) "
        f"| 50,000 events/s (0.60 s) | 2.00{TIMES} |",
        f"| `update(name=Concat(...))`, one call | 10,000 events/s (2.00 s) "
        f"| 40,000 events/s (0.50 s) | 4.00{TIMES} |",
        f"| `bulk_update` of the names | 20,000 events/s (1.00 s) "
        f"| 50,000 events/s (0.40 s) | 2.50{TIMES} |",
        f"| `bulk_create` of new courses | 25,000 events/s (0.80 s) "
        f"| 40,000 events/s (0.50 s) | 1.60{TIMES} |",
    ]


def test_an_audited_run_expects_an_event_per_change_and_a_published_per_other_import():
    assert _writes.expected_events(5) == {
        "sis_import": {"created": 5, "published": 2},
        "update": {"updated": 5},
        "bulk_update": {"updated": 5},
        "bulk_create": {"created": 5},
    }


def test_the_before_section_says_what_measured_it():
    record = {
        "command": "scripts/bench --sections writes",
        "date": "2026-12-04T16:00:00+00:00",
        "machine": "2 CPUs",
        "events": 100_000,
        "results": FIGURES,
    }
    section = _writes.before_section(record)
    assert section.title == "Write path before the triggers (Python recorder)"
    assert section.intro.startswith("Measured with the Python recorder")
    assert "`scripts/bench --sections writes` on 2026-12-04T16:00:00+00:00" in section.intro
    assert len(section.checks) == 4
    assert section.markdown().startswith("## Write path before the triggers (Python recorder)\n")


def test_a_section_is_replaced_in_place_or_added_at_the_end():
    text = "# Benchmarks\n\nhead\n\n## Write path\n\nold\n\n## Retention\n\nkept\n"
    assert _writes.replace_section(text, "Write path", "## Write path\n\nnew") == (
        "# Benchmarks\n\nhead\n\n## Write path\n\nnew\n\n## Retention\n\nkept\n"
    )
    assert _writes.replace_section(text, "Before", "## Before\n\nfigures\n") == (
        text + "\n## Before\n\nfigures\n"
    )
    assert _writes.replace_section(text, "Before", "## Before\n\nb", after="Write path") == (
        "# Benchmarks\n\nhead\n\n## Write path\n\nold\n\n## Before\n\nb\n\n## Retention\n\nkept\n"
    )
    # A heading that only starts like the title is another section.
    assert _writes.replace_section(text, "Write", "## Write\n\nx") == text + "\n## Write\n\nx\n"


@postgresql_only
@pytest.mark.django_db(transaction=True)  # recording_off commits its own transaction
class TestRecordingOff:
    def test_saves_and_bulk_writes_record_nothing_and_are_written(
        self, course: Course, root_account: Account
    ):
        before = CourseEvent.objects.count()
        with _writes.recording_off("default"):
            with connection.cursor() as cursor:
                cursor.execute("SHOW session_replication_role")
                assert cursor.fetchone() == ("replica",)
            course.name = "Renamed quietly"
            course.save()
            Course.objects.filter(pk=course.pk).update(name=Concat("name", Value(" (x)")))
            course.course_code = "QUIET"
            Course.objects.bulk_update([course], ["course_code"])
            Course.objects.bulk_create(
                [Course(account=root_account, root_account=root_account, name="Quiet new")]
            )
        assert CourseEvent.objects.count() == before
        course.refresh_from_db()
        assert (course.name, course.course_code) == ("Renamed quietly (x)", "QUIET")
        assert Course.objects.filter(name="Quiet new").count() == 1

    def test_afterwards_the_app_records_again(self, course: Course):
        with _writes.recording_off("default"):
            assert Course.save is models.Model.save
        assert Course.save is not models.Model.save
        with connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            assert cursor.fetchone() == ("origin",)
        before = CourseEvent.objects.count()
        course.name = "Renamed loudly"
        course.save()
        assert CourseEvent.objects.count() == before + 1

    def test_it_refuses_to_run_inside_a_transaction(self):
        with (
            transaction.atomic(),
            pytest.raises(RuntimeError, match="outside one"),
            _writes.recording_off("default"),
        ):
            pass


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_every_path_is_measured_and_checked_against_its_events(
    course: Course, root_account: Account, department: Account
):
    dataset = types.SimpleNamespace(root=root_account, department=department)
    results = _writes.measure(dataset, saves=3, courses=4, rounds=2, prefix="T-", using="default")
    assert results["courses"] == 4 and results["saves"]["n"] == 3
    assert {path: results[path]["events"] for path in _writes.PATHS} == {
        "sis_import": 6,
        "update": 4,
        "bulk_update": 4,
        "bulk_create": 4,
    }
    # Each kind of each bulk path made its own rows: two imports and two creates a round.
    assert Course.objects.filter(sis_course_id__startswith="T-s").count() == 16
    assert Course.objects.filter(sis_course_id__startswith="T-c").count() == 16
    assert _writes.section(results).checks[0].what.startswith("audited save")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_write_that_records_otherwise_than_expected_stops_the_bench(course: Course):
    def write(index: int, audited: bool) -> Any:
        return lambda: None  # records nothing, audited or not

    with pytest.raises(SystemExit, match=re.escape("recorded {}, not {'updated': 1}")):
        _writes.compare("nothing", write, expected={"updated": 1}, rounds=1, using="default")
