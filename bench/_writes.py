"""The write path: each audited write against the same write with recording off.

Every path is run twice in the same run, once as the app records it and once inside
:func:`recording_off`, the same call on the same kind of rows, and the two are compared:

- a save: fetch a course, change its name, ``course.save()``; the two kinds interleaved
  save by save, p50 and p95 of the save alone (ms);
- ``Course.objects.filter(...).update(name=Concat(...))`` over ``courses`` rows, one call;
- ``Course.objects.bulk_update`` of the names of ``courses`` courses;
- ``Course.objects.bulk_create`` of ``courses`` new courses;
- a SIS import of ``courses`` new courses (``course_audit.sis.import_courses_csv`` on a
  generated ``courses.csv``, half of them published: created and published events).

Each bulk path runs ``rounds`` times of each kind, the first kind alternating, so that
table bloat and the machine's load fall on both alike; each run is one transaction, and
its figure is the mean seconds per run and the events per second it recorded. After each
run the events it recorded are counted: exactly the expected ones for an audited run,
none with recording off, or the bench stops.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

from bench._common import percentile, time_ms
from bench._report import TIMES, Check, Section, Target, ms, number, table

SIS_PREFIX = "BULK-"  # and a stamp of the run, so that a rerun on the same data imports anew
# Rows per statement of every bulk call, in both kinds: the app's own bulk_update default.
# Django's bulk_update sets each field with a CASE of one WHEN per row, whose cost grows
# with the square of the batch: unbounded, the unaudited run would take minutes.
BATCH_SIZE = 1000
# Django's write methods the app overrides to record (``Course.save`` and its QuerySet's).
MODEL_WRITES = ("save",)
QUERYSET_WRITES = ("update", "bulk_update", "bulk_create")

# Issue #14, item 8 (on this 2-core machine; the SIS figure for 100,000 new courses).
SAVE_RATIO = Target(1.3)
BULK_UPDATE_RATIO = Target(2)
BULK_UPDATE_RATE = Target(25_000, at_most=False, unit=" events/s")
SIS_RATE = Target(20_000, at_most=False, unit=" events/s")

# The bulk paths in the order they run and the tables list them: key, what the tables call it.
PATHS = {
    "sis_import": "SIS import of new courses",
    "update": "`update(name=Concat(...))`, one call",
    "bulk_update": "`bulk_update` of the names",
    "bulk_create": "`bulk_create` of new courses",
}


@contextmanager
def recording_off(using: str) -> Iterator[None]:
    """Run the block's writes to courses without recording them, whichever recorder the
    app has: one transaction on ``using``, committed at the end.

    The Python recorder lives in the app's overrides of Django's writes (``Course.save``
    and the QuerySet's ``update``, ``bulk_update`` and ``bulk_create``): for the block,
    those that override Django's get Django's own back, so the very calls an audited run
    makes (a SIS import's included) write the same rows and record nothing. Triggers on
    PostgreSQL are ordinary triggers, which ``session_replication_role = replica`` keeps
    from firing (it needs a superuser, as the bench connects). That role also skips
    foreign-key checks, so an INSERT with recording off checks less than a plain one.
    """
    from django.db import connections, models, transaction

    from course_audit.models import Course

    connection = connections[using]
    if connection.in_atomic_block:
        # Inside an outer transaction the role would outlast the block, until that one ends.
        raise RuntimeError("recording_off() opens its own transaction: call it outside one.")
    queryset_class = type(Course._default_manager.get_queryset())
    with ExitStack() as stack:
        for owner, django_class, names in (
            (Course, models.Model, MODEL_WRITES),
            (queryset_class, models.QuerySet, QUERYSET_WRITES),
        ):
            for name in names:
                if getattr(owner, name) is not getattr(django_class, name):
                    stack.enter_context(mock.patch.object(owner, name, getattr(django_class, name)))
        stack.enter_context(transaction.atomic(using=using))
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
        yield


def measure(
    dataset: Any, *, saves: int, courses: int, rounds: int, prefix: str, using: str
) -> dict[str, Any]:
    """Every figure of the section (``results`` of :func:`section`)."""
    results: dict[str, Any] = {
        "courses": courses,
        "rounds": rounds,
        "saves": measure_saves(dataset, repeat=saves, using=using),
    }
    with tempfile.TemporaryDirectory() as folder:
        writes = _BulkWrites(dataset, courses=courses, prefix=prefix, folder=Path(folder))
        for path in PATHS:
            results[path] = compare(
                path,
                getattr(writes, path),
                expected=writes.expected[path],
                rounds=rounds,
                using=using,
            )
    return results


def measure_saves(dataset: Any, *, repeat: int, using: str) -> dict[str, Any]:
    from course_audit.models import Course

    course_ids = list(
        Course.objects.filter(account=dataset.department)
        .order_by("pk")
        .values_list("pk", flat=True)[:50]
    )
    timings: dict[bool, list[float]] = {True: [], False: []}
    for index in range(repeat):
        course_id = course_ids[index % len(course_ids)]
        for audited in (True, False):
            course = Course.objects.get(pk=course_id)
            course.name = f"Course {course_id} save {index} {'audited' if audited else 'off'}"
            since = last_event_id()
            if audited:
                elapsed, _ = time_ms(course.save)
            else:
                elapsed, _ = time_ms(partial(_save_unaudited, course, using))
            _check_recorded("save", audited, since, {"updated": 1})
            timings[audited].append(elapsed)
    return {
        "n": repeat,
        "audited_p50_ms": statistics.median(timings[True]),
        "audited_p95_ms": percentile(timings[True], 95),
        "unaudited_p50_ms": statistics.median(timings[False]),
        "unaudited_p95_ms": percentile(timings[False], 95),
    }


def _save_unaudited(course: Any, using: str) -> None:
    with recording_off(using):
        course.save()


def compare(
    path: str,
    write: Callable[[int, bool], Callable[[], object]],
    *,
    expected: Mapping[str, int],
    rounds: int,
    using: str,
) -> dict[str, Any]:
    """Time ``write(round, audited)()`` (its preparation untimed) audited and with
    recording off, ``rounds`` times each, each in one transaction; check what each run
    recorded."""
    from django.db import transaction

    seconds: dict[bool, list[float]] = {True: [], False: []}
    for index in range(rounds):
        for audited in (True, False) if index % 2 == 0 else (False, True):
            call = write(index, audited)
            since = last_event_id()
            started = time.perf_counter()
            with transaction.atomic(using=using) if audited else recording_off(using):
                call()
            seconds[audited].append(time.perf_counter() - started)
            _check_recorded(path, audited, since, expected)
    return {
        "events": sum(expected.values()),
        "audited_seconds": statistics.mean(seconds[True]),
        "unaudited_seconds": statistics.mean(seconds[False]),
    }


def last_event_id() -> int:
    from django.db.models import Max

    from course_audit.models import CourseEvent

    return CourseEvent.objects.aggregate(last=Max("pk"))["last"] or 0


def recorded_since(event_id: int) -> dict[str, int]:
    """Events recorded after ``event_id``, by type."""
    from django.db.models import Count

    from course_audit.models import CourseEvent

    rows = (
        CourseEvent.objects.filter(pk__gt=event_id)
        .order_by()
        .values_list("event_type")
        .annotate(n=Count("pk"))
    )
    return dict(rows)


def _check_recorded(path: str, audited: bool, since: int, expected: Mapping[str, int]) -> None:
    found = recorded_since(since)
    wanted = dict(expected) if audited else {}
    if found != wanted:
        kind = "audited" if audited else "with recording off"
        raise SystemExit(f"{path} {kind}: recorded {found}, not {wanted}")


class _BulkWrites:
    """Each bulk path as ``path(round, audited)``: prepares its rows, returns the call to
    time. ``update`` and ``bulk_update`` change the courses of the first audited import."""

    def __init__(self, dataset: Any, *, courses: int, prefix: str, folder: Path) -> None:
        from course_audit.models import Account

        self.root = dataset.root
        self.courses = courses
        self.prefix = prefix
        self.folder = folder
        self.accounts = [
            sis_id
            for sis_id in Account.objects.filter(root_account=dataset.root).values_list(
                "sis_account_id", flat=True
            )
            if sis_id
        ]
        self.expected = expected_events(courses)

    def _name(self, path: str, index: int, audited: bool) -> str:
        return f"{self.prefix}{path}{index}{'a' if audited else 'o'}-"

    @property
    def _imported(self) -> str:
        return self._name("s", 0, True)

    def sis_import(self, index: int, audited: bool) -> Callable[[], object]:
        from course_audit.sis import import_courses_csv

        prefix = self._name("s", index, audited)
        path = self.folder / f"{prefix}courses.csv"
        write_courses_csv(path, self.courses, self.accounts, prefix)

        def run() -> None:
            batch = import_courses_csv(file=path, root_account=self.root)
            if batch.courses_created != self.courses:
                raise SystemExit(
                    f"SIS import: {batch.courses_created} courses created, not {self.courses}"
                )

        return run

    def update(self, index: int, audited: bool) -> Callable[[], object]:
        from django.db.models import Value
        from django.db.models.functions import Concat

        from course_audit.models import Course

        courses = Course.objects.filter(sis_course_id__startswith=self._imported)
        suffix = f" u{index}{'a' if audited else 'o'}"
        return lambda: courses.update(name=Concat("name", Value(suffix)))

    def bulk_update(self, index: int, audited: bool) -> Callable[[], object]:
        from course_audit.models import Course

        objects = list(Course.objects.filter(sis_course_id__startswith=self._imported))
        if len(objects) != self.courses:
            raise SystemExit(f"bulk_update: {len(objects)} imported courses, not {self.courses}")
        for position, course in enumerate(objects):
            course.name = f"Bulk course {position} b{index}{'a' if audited else 'o'}"
        return lambda: Course.objects.bulk_update(objects, ["name"], batch_size=BATCH_SIZE)

    def bulk_create(self, index: int, audited: bool) -> Callable[[], object]:
        from course_audit.models import Course

        prefix = self._name("c", index, audited)
        # root_account is set here: Django's own bulk_create does not fill it in.
        objects = [
            Course(
                account=self.root,
                root_account=self.root,
                name=f"Created course {position}",
                sis_course_id=f"{prefix}{position:06d}",
            )
            for position in range(self.courses)
        ]
        return lambda: Course.objects.bulk_create(objects, batch_size=BATCH_SIZE)


def expected_events(courses: int) -> dict[str, dict[str, int]]:
    """What an audited run of each bulk path over ``courses`` courses records."""
    return {
        # write_courses_csv publishes every other course.
        "sis_import": {"created": courses, "published": courses // 2},
        "update": {"updated": courses},
        "bulk_update": {"updated": courses},
        "bulk_create": {"created": courses},
    }


def write_courses_csv(path: Path, courses: int, accounts: list[str], prefix: str) -> None:
    """New courses, every other one ``published`` (two events each: created, published)."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["course_id", "short_name", "long_name", "account_id", "status", "start_date"]
        )
        for index in range(courses):
            writer.writerow(
                [
                    f"{prefix}{index:06d}",
                    f"BULK{index:06d}",
                    f"Bulk course {index}",
                    accounts[index % len(accounts)],
                    "published" if index % 2 else "active",
                    "2026-01-12",
                ]
            )


# What the section says, from the figures alone (so a stored run prints the same way).


def rate(events: int, seconds: float) -> float:
    return events / seconds


def checks(results: Mapping[str, Any]) -> list[Check]:
    """The issue's targets: the save's ratio, bulk_update's ratio and rate, the SIS rate."""
    saves, bulk, sis = results["saves"], results["bulk_update"], results["sis_import"]
    courses = results["courses"]
    return [
        Check(
            "audited save ÷ save with recording off (p50)",
            ms(saves["audited_p50_ms"]),
            ms(saves["unaudited_p50_ms"]),
            saves["audited_p50_ms"] / saves["unaudited_p50_ms"],
            SAVE_RATIO,
        ),
        Check(
            f"audited bulk_update of {courses:,} courses ÷ with recording off",
            f"{bulk['audited_seconds']:.2f} s",
            f"{bulk['unaudited_seconds']:.2f} s",
            bulk["audited_seconds"] / bulk["unaudited_seconds"],
            BULK_UPDATE_RATIO,
        ),
        Check(
            f"audited bulk_update of {courses:,} courses",
            _events_in(bulk["events"], bulk["audited_seconds"]),
            "—",
            round(rate(bulk["events"], bulk["audited_seconds"])),
            BULK_UPDATE_RATE,
        ),
        Check(
            f"audited SIS import of {courses:,} new courses (target set for 100,000)",
            _events_in(sis["events"], sis["audited_seconds"]),
            "—",
            round(rate(sis["events"], sis["audited_seconds"])),
            SIS_RATE,
        ),
    ]


def _events_in(events: int, seconds: float) -> str:
    return f"{events:,} events in {seconds:.2f} s"


def comparison_table(results: Mapping[str, Any]) -> str:
    """Every path, audited and with recording off, and the ratio of the two."""
    saves = results["saves"]
    rows: list[list[object]] = [
        [
            f"`course.save()` of one field, p50 (p95), {saves['n']:,} of each",
            f"{ms(saves['audited_p50_ms'])} ({ms(saves['audited_p95_ms'])})",
            f"{ms(saves['unaudited_p50_ms'])} ({ms(saves['unaudited_p95_ms'])})",
            _ratio(saves["audited_p50_ms"], saves["unaudited_p50_ms"])
            + f" ({_ratio(saves['audited_p95_ms'], saves['unaudited_p95_ms'])})",
        ]
    ]
    for path, what in PATHS.items():
        figures = results[path]
        events, audited, off = (
            figures["events"],
            figures["audited_seconds"],
            figures["unaudited_seconds"],
        )
        rows.append(
            [
                what,
                f"{number(round(rate(events, audited)))} events/s ({audited:.2f} s)",
                f"{number(round(rate(events, off)))} events/s ({off:.2f} s)",
                _ratio(audited, off),
            ]
        )
    return (
        f"Every path, over {results['courses']:,} courses for the bulk ones (mean of "
        f"{results['rounds']} run(s) of each kind); with recording off, events/s is the "
        "audited run's events over the unaudited run's seconds:\n\n"
        + table(["path", "audited", "recording off", "audited ÷ off"], rows)
    )


def _ratio(audited: float, off: float) -> str:
    return f"{number(audited / off)}{TIMES}"


def section(results: Mapping[str, Any], *, title: str = "Write path", note: str = "") -> Section:
    courses = results["courses"]
    intro = (
        "Each write as the app records it (audited) against the same call with recording "
        "off (`bench._writes.recording_off`: Django's own `Model.save` and QuerySet "
        "`update`/`bulk_update`/`bulk_create` in place of the app's overrides, and on "
        "PostgreSQL `SET LOCAL session_replication_role = replica`, which keeps triggers "
        f"from firing), each run one transaction. A save: `course.save()` of a new name, "
        f"{results['saves']['n']:,} of each kind interleaved, the save alone timed. Bulk, "
        f"{courses:,} courses: a SIS import of new courses (half of them published: created "
        "and published events), `update(name=Concat(...))` and `bulk_update` of the "
        f"imported courses' names, `bulk_create` of new courses, {BATCH_SIZE:,} rows per "
        "statement."
    )
    return Section(
        "writes",
        title,
        f"{note}{intro}" if note else intro,
        checks=checks(results),
        details=[comparison_table(results)],
        raw=dict(results),
    )


def before_section(record: Mapping[str, Any]) -> Section:
    """The write path as measured before the database recorded (``--record-writes-before``)."""
    note = (
        f"Measured with the Python recorder (`Course.save` and the app's QuerySet), before "
        f"the database triggers, by `{record['command']}` on {record['date']} "
        f"({record['machine']}), {record['events']:,} events in the database. With this "
        "recorder the app's `bulk_update` on PostgreSQL writes one `UPDATE ... FROM (VALUES "
        "...)` per batch, where Django's own (recording off) sets the field with a `CASE` of "
        "one `WHEN` per row, whose cost grows with the batch: that ratio compares the two "
        "writers as well as the recording; `update(name=Concat(...))`, where the app has "
        "no writer of its own, shows what recording costs. "
    )
    return section(
        record["results"], title="Write path before the triggers (Python recorder)", note=note
    )


def replace_section(markdown: str, title: str, body: str, *, after: str = "") -> str:
    """``markdown`` with its ``## title`` section replaced by ``body``; when it has none,
    ``body`` goes after the ``## after`` section, or at the end."""
    head, *rest = markdown.rstrip("\n").split("\n\n## ")
    sections = [head, *(f"## {part}" for part in rest)]
    titles = [part.split("\n", 1)[0].removeprefix("## ") for part in sections]
    if title in titles:
        sections[titles.index(title)] = body.rstrip("\n")
    else:
        at = titles.index(after) + 1 if after in titles[1:] else len(sections)
        sections.insert(at, body.rstrip("\n"))
    return "\n\n".join(sections) + "\n"
