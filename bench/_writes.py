"""The write path: one audited save against the same save unaudited, and bulk throughput.

- A save: fetch a course, change its name, ``course.save()`` (the app's ``Course.save``,
  which locks, snapshots and records the event), against the same change written by
  ``django.db.models.Model.save(course)``, which skips the app's override and so records
  nothing. Each in autocommit (its own transaction), the two interleaved so that drift
  in the machine's load falls on both alike; only the save is timed.
- Bulk: a SIS import of ``courses`` new courses (``course_audit.sis.import_courses_csv``
  on a generated ``courses.csv``), then ``Course.objects.bulk_update`` of those courses'
  names; events written per second of each.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench._common import time_ms

SIS_PREFIX = "BULK-"  # and a stamp of the run, so that a rerun on the same data imports anew


def saves(dataset: Any, *, repeat: int) -> dict[str, Any]:
    from django.db import models

    from course_audit.models import Course, CourseEvent

    courses = Course.objects.filter(account=dataset.department).order_by("pk")
    course_ids = list(courses.values_list("pk", flat=True)[:50])
    before = CourseEvent.objects.filter(course_id__in=course_ids).count()
    audited: list[float] = []
    unaudited: list[float] = []
    for index in range(repeat):
        course_id = course_ids[index % len(course_ids)]
        for timings, save in ((audited, Course.save), (unaudited, models.Model.save)):
            course = Course.objects.get(pk=course_id)
            course.name = f"Course {course_id} save {index} {len(timings)}"
            elapsed, _ = time_ms(partial(save, course))
            timings.append(elapsed)
    recorded = CourseEvent.objects.filter(course_id__in=course_ids).count() - before
    if recorded != repeat:
        raise SystemExit(f"saves: {recorded} events recorded for {repeat} audited saves")
    return {
        "audited_p50_ms": statistics.median(audited),
        "unaudited_p50_ms": statistics.median(unaudited),
        "audited_p95_ms": _p95(audited),
        "unaudited_p95_ms": _p95(unaudited),
        "n": repeat,
    }


def _p95(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[94]


def write_courses_csv(path: Path, courses: int, accounts: list[str], prefix: str) -> None:
    """New courses, half ``published`` (two events each: created, published)."""
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


def sis_import(dataset: Any, *, courses: int, prefix: str) -> dict[str, Any]:
    from course_audit.models import Account, CourseEvent
    from course_audit.sis import import_courses_csv

    accounts = list(
        Account.objects.filter(root_account=dataset.root).values_list("sis_account_id", flat=True)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "courses.csv"
        write_courses_csv(path, courses, accounts, prefix)
        started = time.perf_counter()
        batch = import_courses_csv(file=path, root_account=dataset.root)
        seconds = time.perf_counter() - started
    if batch.courses_created != courses:
        raise SystemExit(f"SIS import: {batch.courses_created} courses created, not {courses}")
    events = CourseEvent.objects.filter(sis_batch=batch).count()
    return _rate(courses, events, seconds)


def bulk_update(*, courses: int, prefix: str) -> dict[str, Any]:
    """Rename the SIS import's courses with one ``bulk_update``."""
    from django.db import transaction

    from course_audit.models import Course, CourseEvent

    objects = list(Course.objects.filter(sis_course_id__startswith=prefix).order_by("pk"))
    if len(objects) != courses:
        raise SystemExit(f"bulk_update: {len(objects)} imported courses, not {courses}")
    for course in objects:
        course.name = f"{course.name} (renamed)"
    newest = CourseEvent.objects.order_by("-created_at", "-id").values_list("pk", flat=True)[0]
    started = time.perf_counter()
    with transaction.atomic():
        Course.objects.bulk_update(objects, ["name"])
    seconds = time.perf_counter() - started
    events = CourseEvent.objects.filter(event_type="updated", pk__gt=newest).count()
    if events != courses:
        raise SystemExit(f"bulk_update: {events} events recorded for {courses} changed courses")
    return _rate(courses, events, seconds)


def _rate(courses: int, events: int, seconds: float) -> dict[str, Any]:
    per_second = events / seconds
    return {"courses": courses, "events": events, "seconds": seconds, "per_second": per_second}
