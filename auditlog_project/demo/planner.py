"""The demo's history planner: a year of each course's history, planned up front.

The planner simulates each course's workflow state while it plans, so every step it plans
is one the services accept at that moment; the ``seeder`` then runs the steps in time order.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from auditlog_project.demo.catalogue import (
    ADHOC_COURSES,
    API_ACTORS,
    DEPARTMENTS,
    DEPT_ADMIN_DEPARTMENT,
    DESCRIPTIONS,
    NAME_SUFFIXES,
    ROOT_SIS_ID,
    TEACHER_OF_DEPT,
    TERM_CALENDAR,
)
from course_audit.diff import TRANSITIONS
from course_audit.models import Course, CourseEvent

State = Course.WorkflowState
Source = CourseEvent.EventSource
MANUAL, API, SIS = Source.MANUAL.value, Source.API.value, Source.SIS.value

# The demo's lifecycle steps and the app's actions they are (``diff.TRANSITIONS``, the one
# state machine): which workflow states allow each step and where it leaves the course.
LIFECYCLE_ACTIONS = {
    "publish": "offer",
    "unpublish": "claim",
    "conclude": "conclude",
    "unconclude": "unconclude",
    "delete": "delete",
    "restore": "undelete",
}
ALLOWED_FROM = {
    step: TRANSITIONS[action].allowed_from for step, action in LIFECYCLE_ACTIONS.items()
}
RESULT_STATE = {step: TRANSITIONS[action].target for step, action in LIFECYCLE_ACTIONS.items()}
# A reset ends the old course deleted (its replacement is a course of its own).
RESULT_STATE["reset"] = State.DELETED
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
