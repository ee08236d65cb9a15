"""``manage.py seed_demo``: a believable university with a year of course history.

The base seed builds Northwind State University (sis_account_id ``NSU``): colleges and
departments, the demo users and roles, a few hundred courses and about a year of their
history, with every event type from every source, SIS batches and page views. Every change
goes through ``course_audit.services`` (or the recorded ``Course.objects.bulk_create``) inside
``audit_context(occurred_at=...)``, in time order, so each course row agrees with its events.
It runs once: when the root account exists it changes nothing. ``--seed`` makes it
reproducible; ``--courses`` sizes it.

``--events N`` then appends N synthetic ``updated`` events for load testing, written straight
into the event table (``COPY`` on PostgreSQL, ``bulk_create`` elsewhere), committed in chunks.

Last, when ``COURSE_AUDIT_SIGNING_KEY`` is set (``scripts/demo`` makes one), every event not
sealed yet is sealed into signed checkpoints, as the ``course_audit_checkpoint`` job would:
the pages show them sealed and ``course_audit_verify`` finds the log intact. Synthetic
events added after a first seal are dated in the past, so verification then reports them
as backdated.

The catalogue, the planner, the seeder and the synthetic events are the demo app's modules
(``auditlog_project.demo``); this command only runs them.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from auditlog_project.demo.catalogue import (
    ADMIN_ROLE,
    DEPARTMENTS,
    DEPT_ADMIN_DEPARTMENT,
    PASSWORD,
    ROOT_NAME,
    ROOT_SIS_ID,
    TEACHER_ROLE,
    demo_login,
)
from auditlog_project.demo.seeder import Seeder
from auditlog_project.demo.synthetic import CHUNK, insert_synthetic, synthetic_rows
from course_audit import integrity
from course_audit.conf import conf
from course_audit.models import Account, Course, CourseEvent, PageView, SisBatch

State = Course.WorkflowState
Source = CourseEvent.EventSource

ADMIN_URL = "http://127.0.0.1:8000/admin/"
API_URL = "http://127.0.0.1:8000/api/v1/"
MIN_COURSES = 20


class Command(BaseCommand):
    help = (
        "Build a demo university (Northwind State University) with a year of course history, "
        "once; with --events N, also add N synthetic events for load testing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=2012, help="Random seed, for reproducible data."
        )
        parser.add_argument(
            "--courses",
            type=int,
            default=300,
            help=f"About how many courses the base seed creates (at least {MIN_COURSES}).",
        )
        parser.add_argument(
            "--events",
            type=int,
            default=0,
            help=(
                "Add N synthetic 'updated' events on top of the demo data, for load testing "
                f"(committed {CHUNK:,} at a time on PostgreSQL)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["courses"] < MIN_COURSES:
            raise CommandError(f"--courses must be at least {MIN_COURSES}.")
        if options["events"] < 0:
            raise CommandError("--events must not be negative.")
        now = timezone.now()
        root = Account.objects.filter(parent__isnull=True, sis_account_id=ROOT_SIS_ID).first()
        if root is None:
            seeder = Seeder(rng=random.Random(options["seed"]), now=now)
            with transaction.atomic():
                root = seeder.run(courses=options["courses"])
            self.stdout.write(self.style.SUCCESS(f"Created the demo university {root.name}."))
            if seeder.existing_logins:
                self.stdout.write(
                    self.style.WARNING(
                        "These users existed already and kept their passwords: "
                        + ", ".join(seeder.existing_logins)
                    )
                )
        else:
            self.stdout.write(
                f"Demo data already present: root account {root.name!r} "
                f"(sis_account_id {ROOT_SIS_ID}, id {root.pk}). The base seed changes nothing."
            )
        if options["events"]:
            self.add_events(root, options["events"], random.Random(f"{options['seed']}:events"))
        self.seal()
        self.summary(root)

    def seal(self) -> None:
        if conf.SIGNING_KEY is None:
            self.stdout.write(
                self.style.WARNING(
                    "COURSE_AUDIT_SIGNING_KEY is not set: the history is not sealed "
                    "(scripts/demo makes a key in var/)."
                )
            )
            return
        try:
            made = integrity.seal()
        except integrity.SealingError as error:
            raise CommandError(f"Sealing failed: {error}") from error
        sealed = sum(checkpoint.count for checkpoint in made)
        self.stdout.write(
            self.style.SUCCESS(
                f"Sealed {sealed:,} events in {len(made)} signed checkpoints."
                if made
                else "Every event was sealed already."
            )
        )
        self.stdout.write("Check them: python manage.py course_audit_verify --digests")

    def add_events(self, root: Account, count: int, rng: random.Random) -> None:
        rows = synthetic_rows(root, count, rng, timezone.now())
        progress = tqdm(
            total=count,
            unit="event",
            unit_scale=True,
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        )
        with progress:
            insert_synthetic(rows, count, progress.update)
        self.stdout.write(self.style.SUCCESS(f"Added {count:,} synthetic events."))

    def summary(self, root: Account) -> None:
        subtree = Account.objects.filter(root.subtree_q())
        courses = Course.objects.filter(root_account=root)
        events = CourseEvent.objects.filter(account__in=subtree)
        by_state = dict(courses.values_list("workflow_state").annotate(n=Count("pk")).order_by())
        by_source = dict(events.values_list("event_source").annotate(n=Count("pk")).order_by())
        write = self.stdout.write
        write(f"  accounts: {subtree.count()}")
        write(
            f"  courses: {sum(by_state.values())} ("
            + ", ".join(f"{by_state.get(state, 0)} {state}" for state in State.values)
            + ")"
        )
        write(
            f"  events: {sum(by_source.values()):,} ("
            + ", ".join(f"{by_source.get(source, 0):,} {source}" for source in Source.values)
            + ")"
        )
        write(f"  SIS batches: {SisBatch.objects.filter(root_account=root).count()}")
        write(f"  page views: {PageView.objects.filter(account__in=subtree).count()}")
        write("")
        write(f"Log in with password {PASSWORD!r}:")
        for spec, what in (
            ("admin", "superuser (the Django admin)"),
            ("registrar", f"{ADMIN_ROLE} on {ROOT_NAME}: sees every course's history"),
            ("dept_admin", f"{ADMIN_ROLE} on {DEPARTMENTS[DEPT_ADMIN_DEPARTMENT].name} only"),
            ("teacher", f"{TEACHER_ROLE} on {ROOT_NAME}: a member without permission (403)"),
        ):
            write(f"  {demo_login(spec):<24} {what}")
        write("")
        write(f"Admin: {ADMIN_URL}")
        write(f"API:   {API_URL}  e.g. {API_URL}audit/course/accounts/{root.pk}")
        write(f"Token: python manage.py create_api_token {demo_login('registrar')}")
