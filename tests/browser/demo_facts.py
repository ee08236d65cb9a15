"""What the browser tests need to know about the seeded demo, read from its database.

``seed_demo`` dates its year of history back from today, so the terms in the courses'
names ("Microbiology - Spring 2026") and which course is the busiest change from one day
to the next: the tests look their courses and accounts up here instead of naming them.
Run in the demo server's environment (its settings and ``DATABASE_URL``)::

    python -m tests.browser.demo_facts

prints the facts as JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any


def first(candidates: Iterable[Any], wanted: str) -> Any:
    for candidate in candidates:
        return candidate
    raise LookupError(f"seed_demo no longer seeds {wanted}")


def course_facts(course: Any, events: Any) -> dict[str, Any]:
    return {
        "id": course.pk,
        "name": course.name,
        "account": course.account_id,
        "events": events.filter(course=course).count(),
        "updated": events.filter(course=course, event_type="updated").count(),
    }


def collect() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db.models import Count, Q

    from auditlog_project.demo.catalogue import DEPT_ADMIN_DEPARTMENT, ROOT_SIS_ID
    from course_audit.models import Account, Course, CourseEvent, PageView, SisBatch
    from course_audit.recording import display_name

    events = CourseEvent.objects.all()
    root = Account.objects.get(parent__isnull=True, sis_account_id=ROOT_SIS_ID)
    department = Account.objects.get(sis_account_id=DEPT_ADMIN_DEPARTMENT)
    names = Counter(Course.objects.values_list("name", flat=True))
    # Searched and clicked by name, so a name two courses share would be ambiguous.
    busiest = [
        course
        for course in Course.objects.annotate(n=Count("events")).order_by("-n", "pk")
        if names[course.name] == 1
    ]
    in_department = set(
        Course.objects.filter(department.subtree_q("account__")).values_list("pk", flat=True)
    )
    # Older than one page of ten, with updates to filter on.
    course = first(
        (
            course
            for course in busiest
            if course.n > 10 and events.filter(course=course, event_type="updated").count() > 1
        ),
        "a course with more than ten events, two of them updates",
    )
    outside = first(
        (course for course in busiest if course.pk not in in_department),
        f"a course outside {department.name}",
    )
    inside = first(
        (course for course in busiest if course.pk in in_department),
        f"a course in {department.name}",
    )

    # The college whose subtree holds the most events: its own courses and its departments'.
    colleges = list(Account.objects.filter(parent=root))
    by_subtree = {
        college.pk: events.filter(college.subtree_q("account__")).count() for college in colleges
    }
    college = max(colleges, key=lambda account: (by_subtree[account.pk], -account.pk))
    below = events.filter(college.subtree_q("account__")).exclude(account=college)
    page_view = (
        PageView.objects.filter(pk__in=events.filter(page_view__isnull=False).values("page_view"))
        .order_by("-created_at")
        .first()
    )
    if page_view is None:
        raise LookupError("seed_demo no longer seeds a page view with events")
    # The person who caused the most events in the course above (the picker finds them).
    actor_id = first(
        events.filter(course=course, user__isnull=False)
        .values_list("user", flat=True)
        .annotate(n=Count("id"))
        .order_by("-n", "user"),
        "a course changed by a user",
    )
    actor = get_user_model().objects.get(pk=actor_id)
    # The SIS import that changed courses most, and the fields its updates changed.
    batch = first(
        SisBatch.objects.annotate(
            n=Count("events"), updates=Count("events", filter=Q(events__event_type="updated"))
        )
        .filter(updates__gt=0)
        .order_by("-updates", "pk"),
        "a SIS import that changed courses",
    )
    batch_fields = sorted(
        {
            field
            for data in events.filter(sis_batch=batch, event_type="updated").values_list(
                "event_data", flat=True
            )
            for field in data
        }
    )
    return {
        "person": {
            "id": actor.pk,
            "login": actor.get_username(),
            "name": display_name(actor),
            "events": events.filter(user=actor).count(),
        },
        "course": course_facts(course, events),
        "outside": course_facts(outside, events),
        "inside": course_facts(inside, events),
        "department": department.name,
        "root": {"id": root.pk, "name": root.name},
        "account": {
            "id": college.pk,
            "name": college.name,
            "events": events.filter(account=college).count(),
            "subtree_events": by_subtree[college.pk],
            "courses": sorted(set(events.filter(account=college).values_list("course", flat=True))),
            "subaccount_courses": sorted(set(below.values_list("course", flat=True))),
        },
        "page_view": str(page_view.pk),
        "sis_batch": {
            "id": batch.pk,
            "events": batch.n,
            "fields": batch_fields,
            "updated_of": {
                field: events.filter(
                    sis_batch=batch, event_type="updated", event_data__has_key=field
                ).count()
                for field in batch_fields
            },
        },
        # The admin changelist's first two pages, in its order.
        "newest_events": list(
            events.order_by("-created_at", "-id").values_list("pk", flat=True)[:200]
        ),
    }


def main() -> None:
    import django

    django.setup()
    print(json.dumps(collect()))


if __name__ == "__main__":
    main()
