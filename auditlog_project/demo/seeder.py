"""The demo's seeder: writes the planned university through ``course_audit.services``.

Every change goes through the services (or the recorded ``Course.objects.bulk_create``)
inside ``audit_context(occurred_at=...)``, in time order, so each course row agrees with
its events.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db.models import Max, Min

from auditlog_project.demo.catalogue import (
    ADMIN_ROLE,
    API_CLIENTS,
    BROWSERS,
    COLLEGES,
    DEPARTMENTS,
    PASSWORD,
    ROOT_NAME,
    ROOT_SIS_ID,
    TEACHER_ROLE,
    USERS,
    demo_login,
)
from auditlog_project.demo.planner import API, LIFECYCLE_ACTIONS, SIS, Planner, Step
from course_audit import services
from course_audit.context import audit_context
from course_audit.models import (
    Account,
    AccountMembership,
    Course,
    CourseEvent,
    PageView,
    Role,
    SisBatch,
)


class Seeder:
    """Writes the planned university through the services, step by step in time order."""

    def __init__(self, *, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.accounts: dict[str, Account] = {}
        self.users: dict[str, Any] = {}
        self.courses: dict[int, Course] = {}
        self.batches: dict[str, SisBatch] = {}
        self.batch_courses: dict[str, set[int]] = defaultdict(set)
        self.batch_created: Counter[str] = Counter()
        self.batch_last: dict[str, datetime] = {}
        self.existing_logins: list[str] = []

    def run(self, *, courses: int) -> Account:
        root = self.build_accounts()
        self.build_users(root)
        planner = Planner(rng=self.rng, now=self.now, courses=courses)
        planner.plan()
        for step in sorted(planner.steps, key=lambda step: (step.at, step.seq)):
            self.execute(step, planner)
        self.finish_batches()
        self.align_course_timestamps(root)
        return root

    # -- accounts and people ---------------------------------------------------------

    def build_accounts(self) -> Account:
        created_at = self.now - timedelta(days=400)
        root = Account.objects.create(
            name=ROOT_NAME, sis_account_id=ROOT_SIS_ID, created_at=created_at
        )
        self.accounts[ROOT_SIS_ID] = root
        for college_id, college_name in COLLEGES.items():
            self.accounts[college_id] = Account.objects.create(
                name=college_name, parent=root, sis_account_id=college_id, created_at=created_at
            )
        for department in DEPARTMENTS.values():
            self.accounts[department.sis_id] = Account.objects.create(
                name=department.name,
                parent=self.accounts[department.college],
                sis_account_id=department.sis_id,
                created_at=created_at,
            )
        return root

    def build_users(self, root: Account) -> None:
        roles = {
            "admin": Role.objects.create(
                name=ADMIN_ROLE, root_account=root, view_course_changes=True, manage_courses=True
            ),
            "teacher": Role.objects.create(name=TEACHER_ROLE, root_account=root),
        }
        user_model = get_user_model()
        field_names = {field.name for field in user_model._meta.get_fields()}
        # One hash for every demo login: hashing is slow on purpose, the password is public.
        password = make_password(PASSWORD)
        for spec in USERS:
            login = demo_login(spec.login)
            manager = user_model._default_manager
            try:
                user = manager.get_by_natural_key(login)
            except user_model.DoesNotExist:
                extra: dict[str, Any] = {}
                if "first_name" in field_names:
                    extra.update(first_name=spec.first_name, last_name=spec.last_name)
                if "email" in field_names and user_model.USERNAME_FIELD != "email":
                    extra["email"] = f"{spec.login.replace('_', '.')}@example.edu"
                fields = {user_model.USERNAME_FIELD: login, "password": None, **extra}
                if spec.login == "admin":
                    user = manager.create_superuser(**fields)
                else:
                    user = manager.create_user(**fields)
                if spec.can_log_in:
                    user.password = password
                    user.save(update_fields=["password"])
            else:
                if spec.can_log_in:
                    self.existing_logins.append(login)
            self.users[spec.login] = user
            if spec.role is not None and spec.account is not None:
                AccountMembership.objects.create(
                    user=user, account=self.accounts[spec.account], role=roles[spec.role]
                )

    # -- the history -----------------------------------------------------------------

    def resolve(self, fields: dict[str, Any]) -> dict[str, Any]:
        resolved = dict(fields)
        if "account" in resolved:
            resolved["account"] = self.accounts[resolved["account"]]
        return resolved

    def batch(self, key: str | None, planner: Planner) -> SisBatch | None:
        if key is None:
            return None
        if key not in self.batches:
            plan = planner.batches[key]
            self.batches[key] = SisBatch.objects.create(
                root_account=self.accounts[ROOT_SIS_ID],
                user=self.users["registrar"],
                filename=plan.filename,
                workflow_state=SisBatch.WorkflowState.IMPORTING,
                created_at=plan.at,
            )
        return self.batches[key]

    def execute(self, step: Step, planner: Planner) -> None:
        batch = self.batch(step.batch, planner)
        actor = self.users[step.actor]
        request_id = None
        if step.source != SIS and self.rng.random() < 0.3:
            request_id = uuid.uuid4()
        with audit_context(
            user=actor,
            source=step.source,
            sis_batch=batch,
            occurred_at=step.at,
            request_id=request_id,
        ):
            touched = self.apply(step, planner)
        if step.batch is not None:
            self.batch_courses[step.batch].update(course.pk for course in touched)
            if step.kind == "load":
                self.batch_created[step.batch] += len(touched)
            self.batch_last[step.batch] = step.at
        if request_id is not None:
            self.page_view(step, touched[0], request_id, actor)

    def apply(self, step: Step, planner: Planner) -> list[Course]:
        """Run one step through the services; returns the courses it wrote."""
        if step.kind == "load":
            new = [
                Course(**self.resolve(planner.specs[key]), created_at=step.at) for key in step.keys
            ]
            Course.objects.bulk_create(new)
            self.courses.update(zip(step.keys, new, strict=True))
            return new
        if step.kind == "create":
            spec = self.resolve(planner.specs[step.key])
            self.courses[step.key] = services.course_create(**spec)
            return [self.courses[step.key]]
        course = self.courses[step.key]
        if step.kind == "update":
            services.course_update(course=course, **self.resolve(step.changes))
        elif step.kind in LIFECYCLE_ACTIONS:
            services.course_transition(course=course, action=LIFECYCLE_ACTIONS[step.kind])
        elif step.kind == "copy_into":
            assert step.other is not None
            services.course_copy(source=self.courses[step.other], destination=course)
        elif step.kind == "copy_new":
            assert step.other is not None
            self.courses[step.other] = services.course_copy(
                source=course, name=planner.specs[step.other]["name"]
            )
        elif step.kind == "reset":
            assert step.other is not None
            self.courses[step.other] = services.course_reset(course=course)
        else:
            raise ValueError(f"Unknown step {step.kind!r}")
        return [course]

    def page_view(self, step: Step, course: Course, request_id: uuid.UUID, user: Any) -> None:
        """The request the step was made in, so that ``links.page_view`` resolves."""
        host = "http://127.0.0.1:8000"
        if step.source == API:
            method, path, controller, action = {
                "create": (
                    "POST",
                    f"/api/v1/accounts/{course.account_id}/courses",
                    "courses",
                    "create",
                ),
                "delete": (
                    "DELETE",
                    f"/api/v1/courses/{course.pk}?event=delete",
                    "courses",
                    "destroy",
                ),
                "reset": (
                    "POST",
                    f"/api/v1/courses/{course.pk}/reset_content",
                    "courses",
                    "reset_content",
                ),
                "copy_into": (
                    "POST",
                    f"/api/v1/courses/{course.pk}/content_migrations",
                    "content_migrations",
                    "create",
                ),
            }.get(step.kind, ("PUT", f"/api/v1/courses/{course.pk}", "courses", "update"))
            user_agent = self.rng.choice(API_CLIENTS)
        else:
            method, controller = "POST", "admin"
            if step.kind == "create":
                path, action = "/admin/course_audit/course/add/", "add_view"
            else:
                path, action = f"/admin/course_audit/course/{course.pk}/change/", "change_view"
            user_agent = self.rng.choice(BROWSERS)
        rng = self.rng
        render_time = round(rng.uniform(0.05, 1.2), 3)
        PageView.objects.create(
            request_id=request_id,
            user=user,
            account_id=course.account_id,
            context_type="Course",
            context_id=course.pk,
            url=f"{host}{path}",
            controller=controller,
            action=action,
            http_method=method,
            user_agent=user_agent,
            remote_ip=f"10.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}",
            render_time=render_time,
            created_at=step.at + timedelta(seconds=render_time),
        )

    def finish_batches(self) -> None:
        """Counts and end times, as an import reports them."""
        for key, batch in self.batches.items():
            touched = len(self.batch_courses[key])
            skipped = 1 if self.rng.random() < 0.3 else 0
            batch.rows_total = touched + skipped
            batch.rows_applied = touched
            batch.rows_skipped = skipped
            batch.courses_created = self.batch_created[key]
            batch.courses_updated = touched - self.batch_created[key]
            batch.ended_at = self.batch_last[key] + timedelta(seconds=self.rng.randint(5, 90))
            if skipped:
                batch.workflow_state = SisBatch.WorkflowState.IMPORTED_WITH_MESSAGES
                batch.messages = [
                    f"line {touched + 2}: unknown account_id 'PHYS' (no such sub-account)"
                ]
            else:
                batch.workflow_state = SisBatch.WorkflowState.IMPORTED
            batch.save()

    def align_course_timestamps(self, root: Account) -> None:
        """Give each course the ``created_at``/``updated_at`` of its first and last event.

        Neither is a tracked field, so this records nothing.
        """
        stamps = {
            row["course_id"]: (row["first"], row["last"])
            for row in CourseEvent.objects.filter(course__root_account=root)
            .values("course_id")
            .annotate(first=Min("created_at"), last=Max("created_at"))
            .order_by()
        }
        courses = list(Course.objects.filter(root_account=root))
        for course in courses:
            course.created_at, course.updated_at = stamps[course.pk]
        Course.objects.bulk_update(courses, ["created_at", "updated_at"], batch_size=1000)
