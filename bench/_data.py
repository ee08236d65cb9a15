"""The benchmark's data: a university of realistic shape, loaded with COPY.

A root account with colleges and departments, many courses (about 20,000 from a million
events on), a few hundred actors, SIS batches and page views, and events spread over the
last 18 months, oldest first. One course is big enough that a page ``depth`` events deep
exists (110,000 events for the default depth of 100,000), a few others are big too, and the
rest follow a long tail, as real courses do. Events come in bursts sharing one timestamp,
as a SIS import writes them, so the pagers' tie-breaking is exercised. The rows themselves
come from the demo's synthetic event generator (``auditlog_project.demo.synthetic``), the
one place that makes up event rows.

When the app partitions its event table by month (``course_audit.partitions``), the months
of the data are created first, so rows land in their own partitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from typing import Any

from bench._common import insert_events, make_user

ROOT_SIS_ID = "BENCH"
BIG_COURSE_SIS_ID = "BENCH-00000"
COLLEGES = 6
DEPARTMENTS = 6  # per college
ACTORS = 200
PAGE_VIEWS = 2000
SIS_BATCHES = 20
MONTHS = 18


@dataclasses.dataclass(frozen=True)
class Plan:
    """How many of everything, from the number of events wanted."""

    events: int
    depth: int

    @property
    def courses(self) -> int:
        return max(200, min(20_000, self.events // 50))

    @property
    def big_course_events(self) -> int:
        """The deep pages' course: ``depth`` events and a tenth more."""
        return self.depth + self.depth // 10

    @property
    def synthetic(self) -> int:
        """Events besides each course's ``created`` event."""
        return self.events - self.courses


@dataclasses.dataclass(frozen=True)
class Dataset:
    root: Any
    department: Any  # the big course's account
    course: Any  # the big course
    token: str  # a bearer token of an auditor of the whole root account
    first_month: dt.date
    events: int


def partitions_module() -> Any | None:
    """``course_audit.partitions`` when the event table is partitioned by month (on
    PostgreSQL, from migration 0004 on), else None."""
    from course_audit import partitions

    return partitions if partitions.is_partitioned() else None


def month_start(today: dt.date, months_back: int) -> dt.date:
    index = today.year * 12 + today.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


def load(plan: Plan, *, seed: int = 5) -> Dataset:
    """Build the university and load ``plan.events`` events (``created`` ones included)."""
    from django.db import transaction
    from django.utils import timezone

    from auditlog_project.demo.synthetic import long_tail_rows
    from course_audit.context import audit_context
    from course_audit.models import (
        Account,
        AccountMembership,
        ApiToken,
        Course,
        PageView,
        Role,
        SisBatch,
    )

    rng = random.Random(seed)
    now = timezone.now()
    first_month = month_start(now.date(), MONTHS - 1)
    start = dt.datetime.combine(first_month, dt.time(), tzinfo=dt.UTC)
    partitions = partitions_module()
    if partitions is not None:
        partitions.ensure_partitions(start=first_month)

    with transaction.atomic():
        root = Account.objects.create(name="Bench University", sis_account_id=ROOT_SIS_ID)
        departments = []
        for college_index in range(COLLEGES):
            college = Account.objects.create(
                name=f"College {college_index}", parent=root, sis_account_id=f"C{college_index}"
            )
            for index in range(DEPARTMENTS):
                departments.append(
                    Account.objects.create(
                        name=f"Department {college_index}.{index}",
                        parent=college,
                        sis_account_id=f"D{college_index}-{index}",
                    )
                )
        role = Role.objects.create(name="Bench auditor", view_course_changes=True)
        auditor = make_user("bench-auditor")
        AccountMembership.objects.create(user=auditor, account=root, role=role)
        _, token = ApiToken.issue(user=auditor, name="bench")
        actors = [
            (user.pk, user.get_username())
            for user in (make_user(f"bench-actor{index}") for index in range(ACTORS))
        ]
        batches = SisBatch.objects.bulk_create(
            SisBatch(root_account=root, filename=f"courses-{n}.csv") for n in range(SIS_BATCHES)
        )
        batch_ids = [batch.pk for batch in batches]
        views = PageView.objects.bulk_create(
            PageView(
                request_id=uuid.uuid4(),
                user_id=actors[index % ACTORS][0],
                url="https://lms.example.edu/api/v1/courses",
                http_method="PUT",
                user_agent="bench",
                created_at=start,
            )
            for index in range(PAGE_VIEWS)
        )
        view_ids = [view.pk for view in views]
        with audit_context(source="sis", occurred_at=start):
            courses = Course.objects.bulk_create(
                Course(
                    account=departments[index % len(departments)],
                    name=f"Course {index}",
                    course_code=f"C{index:05d}",
                    sis_course_id=f"{ROOT_SIS_ID}-{index:05d}",
                )
                for index in range(plan.courses)
            )
    course_accounts = [(course.pk, course.account_id) for course in courses]
    rows = long_tail_rows(
        plan.synthetic,
        rng,
        big_course_events=plan.big_course_events,
        course_accounts=course_accounts,
        actors=actors,
        batch_ids=batch_ids,
        view_ids=view_ids,
        start=start,
        end=now - dt.timedelta(minutes=1),
    )
    insert_events(rows)
    # A site's planner has its statistics (autovacuum gathers them, in its own time): the
    # figures must not depend on whether it came round yet after a bulk load.
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    big = courses[0]
    return Dataset(
        root=root,
        department=big.account,
        course=big,
        token=token,
        first_month=first_month,
        events=plan.events,
    )


def existing(root: Any) -> Dataset:
    """The dataset a previous run loaded under ``root`` (with a new token)."""
    from course_audit.models import AccountMembership, ApiToken, Course, CourseEvent

    course = Course.objects.select_related("account").get(sis_course_id=BIG_COURSE_SIS_ID)
    membership = AccountMembership.objects.select_related("user").get(account=root)
    _, token = ApiToken.issue(user=membership.user, name="bench")
    oldest = CourseEvent.objects.order_by("created_at").values_list("created_at", flat=True)[0]
    return Dataset(
        root=root,
        department=course.account,
        course=course,
        token=token,
        first_month=oldest.date().replace(day=1),
        events=CourseEvent.objects.count(),
    )
