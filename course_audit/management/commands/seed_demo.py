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
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import operator
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone
from tqdm import tqdm

from course_audit import recording, services
from course_audit.context import audit_context
from course_audit.diff import EventRow, json_value
from course_audit.models import (
    Account,
    AccountMembership,
    Course,
    CourseEvent,
    PageView,
    Role,
    SisBatch,
)
from course_audit.recording import display_name

State = Course.WorkflowState
Source = CourseEvent.EventSource
MANUAL, API, SIS = Source.MANUAL.value, Source.API.value, Source.SIS.value

ROOT_SIS_ID = "NSU"
ROOT_NAME = "Northwind State University"
PASSWORD = "demo"
ADMIN_URL = "http://127.0.0.1:8000/admin/"
API_URL = "http://127.0.0.1:8000/api/v1/"
MIN_COURSES = 20

# Colleges, their departments (indented) and each department's catalog (indented again),
# each line starting with its SIS id or course number.
UNIVERSITY = """
CAS College of Arts and Sciences
    BIOL Biology
        101 Principles of Biology
        150 Human Anatomy and Physiology I
        210 Genetics
        240 Microbiology
        310 Cell Biology
        355 Ecology
        420 Molecular Biology
    CHEM Chemistry
        101 General Chemistry I
        102 General Chemistry II
        221 Organic Chemistry I
        222 Organic Chemistry II
        340 Physical Chemistry
        410 Biochemistry
    HIST History
        101 World Civilizations to 1500
        102 World Civilizations since 1500
        210 United States History to 1877
        245 History of the Pacific Northwest
        330 Modern Europe
        412 Historiography
    MATH Mathematics
        110 College Algebra
        151 Calculus I
        152 Calculus II
        231 Linear Algebra
        240 Discrete Mathematics
        345 Probability and Statistics
        421 Real Analysis
COE College of Engineering
    CSCI Computer Science
        101 Introduction to Programming
        162 Data Structures
        220 Computer Organization
        301 Algorithms
        330 Database Systems
        361 Operating Systems
        415 Machine Learning
    MECH Mechanical Engineering
        201 Statics
        202 Dynamics
        310 Thermodynamics
        335 Fluid Mechanics
        440 Mechanical Design
    ELEC Electrical Engineering
        201 Circuit Analysis I
        250 Digital Logic
        320 Signals and Systems
        360 Electronics
        430 Power Systems
SOB School of Business
    ACCT Accounting
        201 Financial Accounting
        202 Managerial Accounting
        310 Intermediate Accounting
        340 Cost Accounting
        420 Auditing
    FINC Finance
        300 Corporate Finance
        330 Investments
        410 International Finance
    MKTG Marketing
        300 Principles of Marketing
        320 Consumer Behavior
        350 Digital Marketing
        410 Marketing Research
COED College of Education
    TEDU Teacher Education
        200 Foundations of Education
        310 Classroom Management
        340 Literacy Across the Curriculum
        450 Student Teaching Seminar
    EDLD Educational Leadership
        510 School Leadership
        520 Education Law and Policy
        540 Curriculum Design
        600 Research Methods in Education
"""


@dataclasses.dataclass(frozen=True)
class Department:
    sis_id: str
    name: str
    college: str
    catalog: tuple[tuple[int, str], ...]


def parse_university(text: str) -> tuple[dict[str, str], dict[str, Department]]:
    """``UNIVERSITY`` as ``({college sis id: name}, {department sis id: Department})``."""
    colleges: dict[str, str] = {}
    catalogs: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    college = department = None
    for line in text.strip().splitlines():
        key, name = line.strip().split(" ", 1)
        depth = (len(line) - len(line.lstrip())) // 4
        if depth == 0:
            college = key
            colleges[key] = name
        elif depth == 1:
            assert college is not None
            department = (key, name, college)
            catalogs[department] = []
        else:
            assert department is not None
            catalogs[department].append((int(key), name))
    departments = {
        key: Department(key, name, college_id, tuple(catalog))
        for (key, name, college_id), catalog in catalogs.items()
    }
    return colleges, departments


COLLEGES, DEPARTMENTS = parse_university(UNIVERSITY)

DEPT_ADMIN_DEPARTMENT = "CSCI"


@dataclasses.dataclass(frozen=True)
class DemoUser:
    login: str
    first_name: str
    last_name: str
    role: str | None = None  # "admin" or "teacher"
    account: str | None = None  # sis_account_id of the membership's account
    can_log_in: bool = False


ADMIN_ROLE, TEACHER_ROLE = "Account admin", "Teacher"
USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "", "", can_log_in=True),
    DemoUser("registrar", "Margaret", "Okafor", "admin", ROOT_SIS_ID, can_log_in=True),
    DemoUser("dept_admin", "Daniel", "Kim", "admin", DEPT_ADMIN_DEPARTMENT, can_log_in=True),
    DemoUser("teacher", "Priya", "Raman", "teacher", ROOT_SIS_ID, can_log_in=True),
    DemoUser("hbrooks", "Hannah", "Brooks", "admin", ROOT_SIS_ID),  # instructional design
    DemoUser("twhitfield", "Thomas", "Whitfield", "teacher", "BIOL"),
    DemoUser("epetrova", "Elena", "Petrova", "teacher", "CHEM"),
    DemoUser("mjohnson", "Marcus", "Johnson", "teacher", "CSCI"),
    DemoUser("kwatanabe", "Kenji", "Watanabe", "teacher", "MECH"),
    DemoUser("lbennett", "Laura", "Bennett", "teacher", "HIST"),
    DemoUser("sosei", "Samuel", "Osei", "teacher", "ACCT"),
    DemoUser("gliu", "Grace", "Liu", "teacher", "TEDU"),
)
# Who teaches (and so edits, in the web UI) the courses of each department.
TEACHER_OF_DEPT = {
    "BIOL": "twhitfield",
    "CHEM": "epetrova",
    "HIST": "lbennett",
    "MATH": "teacher",
    "CSCI": "mjohnson",
    "MECH": "kwatanabe",
    "ELEC": "kwatanabe",
    "ACCT": "sosei",
    "FINC": "sosei",
    "MKTG": "sosei",
    "TEDU": "gliu",
    "EDLD": "gliu",
}
API_ACTORS = ("hbrooks", "registrar", "mjohnson", "twhitfield")

# (code, label, start (month, day), end (month, day), weight)
TERM_CALENDAR = (
    ("SP", "Spring", (1, 13), (5, 9), 1.0),
    ("SU", "Summer", (5, 27), (8, 8), 0.35),
    ("FA", "Fall", (8, 25), (12, 12), 1.0),
)
NAME_SUFFIXES = (" (Online)", " (Hybrid)", " - Honors", " (Evening)")
ADHOC_COURSES = (
    ("Faculty Development: Teaching with Canvas", None),
    ("New Student Orientation", None),
    ("Academic Integrity Tutorial", None),
    ("Graduate Teaching Assistant Training", "CAS"),
    ("Engineering Lab Safety Training", "COE"),
    ("Writing Center Workshops", "CAS"),
    ("Business Career Readiness", "SOB"),
    ("Student Teaching Placement Hub", "COED"),
    ("Undergraduate Research Symposium", None),
    ("Library Research Skills", "CAS"),
)
DESCRIPTIONS = (
    "Syllabus, schedule and office hours are posted under Modules. Read the syllabus first.",
    "Weekly readings, lab handouts and the grading policy are linked from the home page.",
    "This section meets online; lectures are recorded and posted within 24 hours.",
    "Textbook: see the bookstore listing. Homework is submitted here, never by email.",
)
BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
)
API_CLIENTS = ("canvasapi/3.3.0", "python-requests/2.32.3", "NSU-Timetable-Sync/2.4")

# Which workflow states allow each lifecycle step, and where it leaves the course.
ALLOWED_FROM = {
    "publish": {State.UNPUBLISHED},
    "unpublish": {State.AVAILABLE},
    "conclude": {State.UNPUBLISHED, State.AVAILABLE},
    "unconclude": {State.COMPLETED},
    "delete": {State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED},
    "restore": {State.DELETED},
}
RESULT_STATE = {
    "publish": State.AVAILABLE,
    "unpublish": State.UNPUBLISHED,
    "conclude": State.COMPLETED,
    "unconclude": State.AVAILABLE,
    "delete": State.DELETED,
    "restore": State.UNPUBLISHED,
    "reset": State.DELETED,
}
TRANSITIONS = {
    "publish": services.course_publish,
    "unpublish": services.course_unpublish,
    "conclude": services.course_conclude,
    "unconclude": services.course_unconclude,
    "delete": services.course_delete,
    "restore": services.course_restore,
}
# Features given to the first courses of terms that have started, so that even a small
# seed has every event type from every source.
FORCED_FEATURES = (
    "copy_master",
    "reset",
    "unpublish_pair",
    "delete_restore",
    "oops_conclude",
    "copy_new",
    "rename",
    "move",
)


@dataclasses.dataclass
class Term:
    code: str
    label: str
    start: datetime
    end: datetime
    weight: float
    batches: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BatchPlan:
    key: str
    at: datetime
    filename: str


@dataclasses.dataclass
class Track:
    """One planned course and its simulated state while its history is planned."""

    key: int
    fields: dict[str, Any]
    state: str
    t: datetime
    dept: str


@dataclasses.dataclass
class Step:
    at: datetime
    seq: int
    kind: str
    key: int
    source: str
    actor: str
    batch: str | None = None
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    other: int | None = None
    keys: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Cast:
    """Who acts on one course: its teacher, an admin over it, an API integration."""

    teacher: str
    admin: str
    integration: str


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


class Planner:
    """Plans the whole history up front: courses, their steps and the SIS batches."""

    def __init__(self, *, rng: random.Random, now: datetime, courses: int) -> None:
        self.rng = rng
        self.now = now
        self.cutoff = now - timedelta(minutes=5)
        self.window_start = now - timedelta(days=365)
        self.total = courses
        self.steps: list[Step] = []
        self.specs: dict[int, dict[str, Any]] = {}
        self.batches: dict[str, BatchPlan] = {}
        self.masters: dict[str, int] = {}
        self.section_counter: Counter[tuple[str, str, int]] = Counter()
        self._keys = itertools.count(1)
        self._seq = itertools.count(1)

    # -- helpers ---------------------------------------------------------------------

    def between(self, lo: datetime, hi: datetime) -> datetime | None:
        hi = min(hi, self.cutoff)
        if hi <= lo:
            return None
        return lo + (hi - lo) * self.rng.random()

    def after(
        self, track: Track, *, hi: datetime, gap: timedelta = timedelta(days=20)
    ) -> datetime | None:
        """A random time after the track's last step, at most ``gap`` later and before ``hi``."""
        lo = track.t + timedelta(minutes=10)
        return self.between(lo, min(hi, lo + gap))

    def sis_time(self, batch_key: str | None) -> datetime | None:
        if batch_key is None or batch_key not in self.batches:
            return None
        return self.batches[batch_key].at + timedelta(seconds=self.rng.uniform(20, 600))

    def new_track(self, fields: dict[str, Any], at: datetime, dept: str) -> Track:
        track = Track(next(self._keys), dict(fields), State.UNPUBLISHED, at, dept)
        self.specs[track.key] = dict(fields)
        return track

    def add(
        self, step_kind: str, track: Track, at: datetime | None, source: str, actor: str, **kw: Any
    ) -> bool:
        """Plan one step of ``track`` if its time and the simulated state allow it."""
        if at is None or at <= track.t or at >= self.cutoff:
            return False
        if step_kind in ALLOWED_FROM:
            if track.state not in ALLOWED_FROM[step_kind]:
                return False
        elif track.state == State.DELETED:
            return False
        if source == SIS and kw.get("batch") is None:
            return False
        self.steps.append(Step(at, next(self._seq), step_kind, track.key, source, actor, **kw))
        track.t = at
        track.state = RESULT_STATE.get(step_kind, track.state)
        return True

    def update(
        self,
        track: Track,
        at: datetime | None,
        source: str,
        actor: str,
        batch: str | None = None,
        **changes: Any,
    ) -> bool:
        changes = {f: v for f, v in changes.items() if track.fields.get(f) != v}
        if not changes:
            return False
        if not self.add("update", track, at, source, actor, batch=batch, changes=changes):
            return False
        track.fields.update(changes)
        return True

    def spawn(
        self, kind: str, track: Track, at: datetime | None, source: str, actor: str
    ) -> Track | None:
        """A copy into a new course (``copy_new``) or a reset (``reset``): the new track."""
        if at is None or at <= track.t or at >= self.cutoff or track.state == State.DELETED:
            return None
        fields = dict(track.fields)
        if kind == "copy_new":
            fields["name"] = f"{fields['name']} (Sandbox)"[:255]
            fields["sis_course_id"] = None
        else:
            track.fields["sis_course_id"] = None
        new = self.new_track(fields, at, track.dept)
        self.add(kind, track, at, source, actor, other=new.key)
        return new

    # -- the calendar ----------------------------------------------------------------

    def load_time(self, start: datetime) -> datetime:
        """When the SIS loads a term's courses: seven weeks ahead, but within the year."""
        load = max(start - timedelta(days=50), self.window_start + timedelta(days=12))
        return load.replace(hour=2, minute=15, second=0, microsecond=0)

    def terms(self) -> list[Term]:
        """Terms whose courses were loaded within the year and before now."""
        found = []
        for year in range(self.now.year - 1, self.now.year + 2):
            for code, label, (sm, sd), (em, ed), weight in TERM_CALENDAR:
                start, end = utc(year, sm, sd, 7), utc(year, em, ed, 7)
                in_year = start >= self.window_start + timedelta(days=20)
                loaded = self.load_time(start) < self.cutoff - timedelta(hours=1)
                if in_year and loaded:
                    found.append(Term(f"{year}{code}", f"{label} {year}", start, end, weight))
        return found

    def plan_batches(self, term: Term) -> None:
        """The term's SIS imports that have run: load, publish, midterm and conclude."""
        moments = {
            "load": self.load_time(term.start),
            "publish": (term.start - timedelta(days=3)).replace(hour=2),
            "midterm": (term.start + timedelta(days=24)).replace(hour=2),
            "conclude": (term.end + timedelta(days=5)).replace(hour=2),
        }
        for kind, at in moments.items():
            if at < self.cutoff - timedelta(hours=1):
                key = f"{term.code}-{kind}"
                filename = f"nsu_courses_{term.code}_{at:%Y%m%d}.csv"
                self.batches[key] = BatchPlan(key, at, filename)
                term.batches[kind] = key

    # -- the plan --------------------------------------------------------------------

    def plan(self) -> None:
        """Plan master shells, stand-alone courses and each term's SIS-loaded courses."""
        departments = list(DEPARTMENTS)
        n_masters = max(1, min(len(departments), self.total // 25))
        n_adhoc = max(2, round(self.total * 0.05))
        n_term = self.total - n_masters - n_adhoc
        for dept in departments[:n_masters]:
            self.plan_master(dept)
        for index in range(n_adhoc):
            self.plan_adhoc(index)
        terms = self.terms()
        counts = self.allocate(n_term, [term.weight for term in terms])
        started: list[Track] = []
        planned: list[tuple[Track, Term]] = []
        for term, count in zip(terms, counts, strict=True):
            self.plan_batches(term)
            load_key = term.batches["load"]
            load_at = self.batches[load_key].at + timedelta(seconds=30)
            tracks = [self.new_term_track(term, load_at) for _ in range(count)]
            self.steps.append(
                Step(
                    load_at,
                    next(self._seq),
                    "load",
                    0,
                    SIS,
                    "registrar",
                    batch=load_key,
                    keys=[track.key for track in tracks],
                )
            )
            planned.extend((track, term) for track in tracks)
            if term.start < self.now - timedelta(days=60):
                started.extend(tracks)
        forced: dict[int, set[str]] = defaultdict(set)
        for index, feature in enumerate(FORCED_FEATURES):
            if started:
                forced[started[index % len(started)].key].add(feature)
        for track, term in planned:
            self.plan_term_course(track, term, forced[track.key])

    @staticmethod
    def allocate(total: int, weights: list[float]) -> list[int]:
        """Split ``total`` by ``weights``, largest remainder first, so small seeds still
        reach every term."""
        shares = [total * weight / sum(weights) for weight in weights]
        counts = [int(share) for share in shares]
        by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
        for i in by_remainder[: total - sum(counts)]:
            counts[i] += 1
        return counts

    def new_term_track(self, term: Term, loaded_at: datetime) -> Track:
        summer = term.code.endswith("SU")
        while True:
            dept = self.rng.choice(list(DEPARTMENTS))
            number, title = self.rng.choice(DEPARTMENTS[dept].catalog)
            if not summer or number < 300:
                break
        self.section_counter[(term.code, dept, number)] += 1
        section = self.section_counter[(term.code, dept, number)]
        fields = {
            "account": dept,
            "name": f"{title} - {term.label}",
            "course_code": f"{dept} {number}-{section:02d}",
            "sis_course_id": f"{term.code}-{dept}-{number}-{section:02d}",
            "start_at": term.start,
            "conclude_at": term.end,
            "is_public": False,
            "public_description": "",
        }
        return self.new_track(fields, loaded_at, dept)

    def plan_master(self, dept: str) -> None:
        at = self.window_start + timedelta(days=self.rng.uniform(1, 10))
        fields = {
            "account": dept,
            "name": f"{DEPARTMENTS[dept].name} Master Course Shell",
            "course_code": f"{dept}-MASTER",
            "sis_course_id": None,
            "start_at": None,
            "conclude_at": None,
            "is_public": False,
            "public_description": "",
        }
        track = self.new_track(fields, at, dept)
        self.steps.append(Step(at, next(self._seq), "create", track.key, MANUAL, "registrar"))
        self.masters[dept] = track.key
        self.update(
            track,
            self.after(track, hi=self.cutoff, gap=timedelta(days=30)),
            MANUAL,
            TEACHER_OF_DEPT[dept],
            public_description=self.rng.choice(DESCRIPTIONS),
        )

    def plan_adhoc(self, index: int) -> None:
        title, college = ADHOC_COURSES[index % len(ADHOC_COURSES)]
        if index >= len(ADHOC_COURSES):
            title = f"{title} {index // len(ADHOC_COURSES) + 1}"
        dept = self.rng.choice(
            [d.sis_id for d in DEPARTMENTS.values() if college in (None, d.college)]
        )
        at = self.between(
            self.window_start + timedelta(days=1), self.now - timedelta(days=3)
        ) or self.window_start + timedelta(days=1)
        source = MANUAL if index % 2 == 0 else API
        actor = "registrar" if source == MANUAL else self.rng.choice(API_ACTORS)
        start = at + timedelta(days=self.rng.randint(3, 20)) if self.rng.random() < 0.6 else None
        fields = {
            "account": college or ROOT_SIS_ID,
            "name": title,
            "course_code": "".join(word[0] for word in title.split() if word[0].isupper())[:12],
            "sis_course_id": None,
            "start_at": start,
            "conclude_at": start + timedelta(days=120) if start else None,
            "is_public": False,
            "public_description": "",
        }
        track = self.new_track(fields, at, dept)
        self.steps.append(Step(at, next(self._seq), "create", track.key, source, actor))
        if self.rng.random() < 0.75:
            self.add("publish", track, self.after(track, hi=self.cutoff), source, actor)
        if self.rng.random() < 0.5:
            self.update(
                track,
                self.after(track, hi=self.cutoff, gap=timedelta(days=60)),
                MANUAL,
                "hbrooks",
                is_public=True,
                public_description=self.rng.choice(DESCRIPTIONS),
            )
        roll = self.rng.random()
        if roll < 0.2:
            self.add(
                "conclude",
                track,
                self.after(track, hi=self.cutoff, gap=timedelta(days=150)),
                source,
                actor,
            )
        elif roll < 0.35:
            self.add(
                "delete",
                track,
                self.after(track, hi=self.cutoff, gap=timedelta(days=150)),
                MANUAL,
                "registrar",
            )

    def plan_term_course(self, track: Track, term: Term, forced: set[str]) -> None:
        """A term's course: prepared, published around the start, edited while it runs,
        concluded after the end (by the SIS, a person or an integration)."""
        rng = self.rng
        cast = Cast(
            teacher=TEACHER_OF_DEPT[track.dept],
            admin="dept_admin" if track.dept == DEPT_ADMIN_DEPARTMENT else "registrar",
            integration=rng.choice(API_ACTORS),
        )

        def want(feature: str, probability: float) -> bool:
            return feature in forced or rng.random() < probability

        current = self.before_term(track, term, cast, want, cancellable=not forced)
        if current is None:
            return
        if not self.publish_term_course(current, term, cast) and not (
            forced
            and self.add(
                "publish",
                current,
                self.after(current, hi=term.end, gap=timedelta(days=10)),
                MANUAL,
                cast.teacher,
            )
        ):
            return
        self.during_term(current, term, cast, want, forced)
        if current.state != State.DELETED:
            self.after_term(current, term, cast)

    def before_term(
        self,
        track: Track,
        term: Term,
        cast: Cast,
        want: Callable[[str, float], bool],
        *,
        cancellable: bool,
    ) -> Track | None:
        """Syllabus, content from the master shell, a move, new dates, a reset or a
        cancellation. Returns the course that goes on (a reset replaces it), or None."""
        rng = self.rng
        pre_term = term.start - timedelta(days=1)
        if want("syllabus", 0.3):
            self.update(
                track,
                self.after(track, hi=pre_term),
                MANUAL,
                cast.teacher,
                public_description=rng.choice(DESCRIPTIONS),
            )
        master = self.masters.get(track.dept) or next(iter(self.masters.values()), None)
        if master is not None and want("copy_master", 0.12):
            source = MANUAL if rng.random() < 0.8 else API
            actor = cast.teacher if source == MANUAL else cast.integration
            self.add(
                "copy_into", track, self.after(track, hi=pre_term), source, actor, other=master
            )
        if want("move", 0.02):
            college = DEPARTMENTS[track.dept].college
            target = next(
                dept.sis_id
                for dept in DEPARTMENTS.values()
                if dept.college == college and dept.sis_id != track.fields["account"]
            )
            self.update(track, self.after(track, hi=pre_term), MANUAL, cast.admin, account=target)
        if want("dates", 0.06):
            shift = timedelta(days=rng.choice((-7, 7, 14)))
            self.update(
                track,
                self.after(track, hi=pre_term),
                API,
                "hbrooks",
                start_at=track.fields["start_at"] + shift,
                conclude_at=track.fields["conclude_at"] + shift,
            )
        if want("reset", 0.03):
            source = API if rng.random() < 0.5 or not cancellable else MANUAL
            actor = cast.integration if source == API else cast.teacher
            track = (
                self.spawn("reset", track, self.after(track, hi=pre_term), source, actor) or track
            )
        if cancellable and rng.random() < 0.04:
            # A cancelled section: the SIS deletes it; a few are reopened.
            batch = term.batches.get("publish")
            if self.add("delete", track, self.sis_time(batch), SIS, "registrar", batch=batch):
                if rng.random() < 0.7:
                    return None
                self.add("restore", track, self.after(track, hi=self.cutoff), MANUAL, cast.admin)
        return track

    def publish_term_course(self, track: Track, term: Term, cast: Cast) -> bool:
        roll = self.rng.random()
        batch = term.batches.get("publish")
        if roll < 0.4 and batch:
            return self.add("publish", track, self.sis_time(batch), SIS, "registrar", batch=batch)
        if roll < 0.95:
            source = MANUAL if roll < 0.82 else API
            at = self.between(
                max(track.t, term.start - timedelta(days=6)), term.start + timedelta(days=2)
            )
            actor = cast.teacher if source == MANUAL else cast.integration
            return self.add("publish", track, at, source, actor)
        return False

    def during_term(
        self,
        track: Track,
        term: Term,
        cast: Cast,
        want: Callable[[str, float], bool],
        forced: set[str],
    ) -> None:
        rng, teacher = self.rng, cast.teacher
        in_term = term.end - timedelta(days=1)
        if want("public", 0.15):
            self.update(
                track,
                self.after(track, hi=in_term),
                MANUAL,
                teacher,
                is_public=not track.fields["is_public"],
            )
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            self.update(
                track,
                self.after(track, hi=in_term, gap=timedelta(days=30)),
                MANUAL,
                teacher,
                public_description=rng.choice(DESCRIPTIONS),
            )
        if want("rename", 0.10):
            source = API if "rename" in forced or rng.random() < 0.3 else MANUAL
            self.update(
                track,
                self.after(track, hi=in_term),
                source,
                cast.integration if source == API else teacher,
                name=track.fields["name"].replace(" - ", rng.choice(NAME_SUFFIXES) + " - ", 1),
            )
        if want("unpublish_pair", 0.06) and self.add(
            "unpublish", track, self.after(track, hi=in_term), MANUAL, teacher
        ):
            back = self.between(track.t + timedelta(minutes=5), track.t + timedelta(hours=3))
            self.add("publish", track, back, MANUAL, teacher)
        if want("delete_restore", 0.03) and self.add(
            "delete", track, self.after(track, hi=in_term), MANUAL, teacher
        ):
            # Deleted by mistake: an admin restores it (unpublished), the teacher republishes.
            self.add(
                "restore",
                track,
                self.after(track, hi=self.cutoff, gap=timedelta(days=2)),
                API if "delete_restore" in forced else MANUAL,
                cast.admin,
            )
            later = self.after(track, hi=self.cutoff, gap=timedelta(hours=6))
            self.add("publish", track, later, MANUAL, teacher)
        if want("oops_conclude", 0.02) and self.add(
            "conclude", track, self.after(track, hi=in_term), MANUAL, teacher
        ):
            later = self.after(track, hi=self.cutoff, gap=timedelta(days=1))
            self.add("unconclude", track, later, API, cast.integration)
        midterm = term.batches.get("midterm")
        if midterm and rng.random() < 0.15:
            self.update(
                track,
                self.sis_time(midterm),
                SIS,
                "registrar",
                batch=midterm,
                conclude_at=track.fields["conclude_at"] + timedelta(days=7),
            )
        if want("copy_new", 0.03):
            sandbox = self.spawn("copy_new", track, self.after(track, hi=in_term), MANUAL, teacher)
            if sandbox is not None and rng.random() < 0.5:
                later = self.after(sandbox, hi=self.cutoff, gap=timedelta(days=60))
                self.add("delete", sandbox, later, MANUAL, teacher)

    def after_term(self, track: Track, term: Term, cast: Cast) -> None:
        """Conclusion, a grade change now and then, and some clean-up."""
        rng = self.rng
        roll = rng.random()
        batch = term.batches.get("conclude")
        if roll < 0.45 and batch:
            concluded = self.add(
                "conclude", track, self.sis_time(batch), SIS, "registrar", batch=batch
            )
        elif roll < 0.75:
            source = MANUAL if roll < 0.6 else API
            ends = track.fields["conclude_at"]
            at = self.between(max(track.t, ends + timedelta(days=1)), ends + timedelta(days=10))
            actor = cast.admin if source == MANUAL else cast.integration
            concluded = self.add("conclude", track, at, source, actor)
        else:
            concluded = False
        if not concluded:
            return
        if rng.random() < 0.10:
            source = MANUAL if rng.random() < 0.6 else API
            actor = cast.admin if source == MANUAL else cast.integration
            if self.add(
                "unconclude",
                track,
                self.after(track, hi=self.cutoff, gap=timedelta(days=30)),
                source,
                actor,
            ):
                later = self.after(track, hi=self.cutoff, gap=timedelta(days=10))
                self.add("conclude", track, later, source, actor)
        if rng.random() < 0.04:
            later = self.after(track, hi=self.cutoff, gap=timedelta(days=60))
            self.add("delete", track, later, MANUAL, cast.admin)


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
        elif step.kind in TRANSITIONS:
            TRANSITIONS[step.kind](course=course)
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


def demo_login(name: str) -> str:
    """The login of a demo user in the active user model (an email if that is the login)."""
    if get_user_model().USERNAME_FIELD == "email":
        return f"{name}@example.edu"
    return name


# -- synthetic events for load testing ------------------------------------------------

CHUNK = 100_000  # rows per transaction


def iso(value: datetime) -> str:
    return str(json_value(value))


def synthetic_diffs(
    name: str, conclude_at: datetime | None, start_at: datetime | None
) -> list[dict[str, Any]]:
    """Plausible ``updated`` diffs for one course (the contract's ``{field: [old, new]}``)."""
    diffs: list[dict[str, Any]] = [{"is_public": [False, True]}, {"is_public": [True, False]}]
    for suffix in NAME_SUFFIXES:
        diffs.append({"name": [name, f"{name}{suffix}"]})
        diffs.append({"name": [f"{name}{suffix}", name]})
    base = conclude_at or (start_at + timedelta(days=110) if start_at else None)
    if base is not None:
        for days in (3, 7, 14):
            diffs.append({"conclude_at": [iso(base), iso(base + timedelta(days=days))]})
    return diffs


def synthetic_rows(
    root: Account, count: int, rng: random.Random, now: datetime
) -> Iterator[EventRow]:
    """``count`` event rows: ``updated`` events over the demo's live courses, each after its
    course's creation and not in the future."""
    # Read everything now: the rows are consumed while a COPY holds the connection.
    courses = []
    for pk, account_id, name, start_at, conclude_at, created_at in (
        Course.objects.filter(root_account=root)
        .exclude(workflow_state=State.DELETED)
        .values_list("pk", "account_id", "name", "start_at", "conclude_at", "created_at")
    ):
        diffs = synthetic_diffs(name, conclude_at, start_at)
        courses.append((pk, account_id, min(created_at, now).timestamp(), diffs))
    if not courses:
        raise CommandError("The demo has no live course to add events to.")
    subtree = Account.objects.filter(root.subtree_q())
    actors = [
        (user.pk, display_name(user))
        for user in get_user_model()
        ._default_manager.filter(course_audit_memberships__account__in=subtree)
        .distinct()
        .order_by("pk")
    ]
    batches = [
        (
            batch.created_at.timestamp(),
            batch.pk,
            batch.user_id,
            display_name(batch.user) if batch.user else "",
        )
        for batch in SisBatch.objects.filter(root_account=root)
        .select_related("user")
        .order_by("created_at")
    ]
    return _generate_rows(count, rng, now, courses, actors, batches)


def _generate_rows(
    count: int,
    rng: random.Random,
    now: datetime,
    courses: list[tuple[int, int, float, list[Any]]],
    actors: list[tuple[int, str]],
    batches: list[tuple[float, int, int | None, str]],
) -> Iterator[EventRow]:
    batch_times = [batch[0] for batch in batches]
    now_ts = now.timestamp()
    random_, randrange, uuid4, from_ts = (
        rng.random,
        rng.randrange,
        uuid.uuid4,
        datetime.fromtimestamp,
    )
    n_courses, n_actors = len(courses), len(actors)
    for _ in range(count):
        pk, account_id, created_ts, diffs = courses[randrange(n_courses)]
        ts = created_ts + random_() * (now_ts - created_ts)
        data = diffs[randrange(len(diffs))]
        roll = random_()
        batch_index = bisect.bisect_right(batch_times, ts) - 1 if roll >= 0.85 else -1
        if batch_index >= 0:
            _at, batch_id, user_id, user_name = batches[batch_index]
            source = SIS
        else:
            source, batch_id = (MANUAL if roll < 0.55 else API), None
            user_id, user_name = actors[randrange(n_actors)] if n_actors else (None, "")
        yield {
            "uuid": uuid4(),
            "created_at": from_ts(ts, UTC),
            "course_id": pk,
            "account_id": account_id,
            "event_type": CourseEvent.EventType.UPDATED.value,
            "event_source": source,
            "event_data": data,
            "related_course_id": None,
            "user_id": user_id,
            "user_name": user_name,
            "page_view_id": None,
            "sis_batch_id": batch_id,
        }


def insert_synthetic(rows: Iterator[EventRow], count: int, progress: tqdm[Any]) -> None:
    """Insert the rows through the recorder's bulk path (``COPY`` on PostgreSQL), a chunk
    per transaction so the deferred foreign-key checks stay bounded."""
    # In (account, time) order, each chunk walks the (account|course, created_at, id)
    # indexes once instead of jumping about them.
    in_index_order = operator.itemgetter("account_id", "created_at")
    left = count
    while left:
        size = min(CHUNK, left)
        chunk = sorted(itertools.islice(rows, size), key=in_index_order)
        with transaction.atomic():
            recording.insert_events(chunk, DEFAULT_DB_ALIAS)
        progress.update(size)
        left -= size


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
        self.summary(root)

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
            insert_synthetic(rows, count, progress)
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
