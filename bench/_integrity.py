"""Tamper evidence at scale: sealing every event of the run's database, verifying them, and
what a proof request costs against a page of events.

- ``seal``: ``integrity.seal``, what ``manage.py course_audit_checkpoint`` runs, over every
  event of the run (none sealed before), in checkpoints of ``COURSE_AUDIT_CHECKPOINT_MAX_EVENTS``;
- ``verify``: ``integrity.verify(digests=True)``, what ``course_audit_verify --digests``
  runs, over all of them;
- each in events per second, with the CPU seconds of this process and, when the server runs
  on this host, of its database backend: on a shared machine, wall time also counts the
  other jobs' share of the cores;
- ``proof``: p50 of ``GET /api/v1/audit/course/events/<uuid>/proof`` for an event of the
  big course, against page one of that course's events (the default ``per_page``), same
  token, interleaved: the ratio is the figure.

The issue asks for 1,000,000 events: run it as ``scripts/bench --events 1000000 --sections
integrity``. A run with more events seals them all (about a minute per million each way).
The section signs with a key of its own and writes the digests to a temporary directory;
the checkpoints are removed before and after (``course_audit.allow_truncate``), so the
database is left as it was loaded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from bench._common import Timed, measure_in_rounds
from bench._report import TIMES, Check, Section, Target, ms, number, table

# The aim, on this machine.
EVENTS_PER_SECOND = Target(100_000, at_most=False, unit=" events/s")


def measure(run: Any) -> Section:
    from django.test import override_settings

    from course_audit import integrity

    with tempfile.TemporaryDirectory(prefix="bench-integrity-") as folder:
        private_pem, _, _ = integrity.generate_key_pair()
        key_path = Path(folder) / "signing.pem"
        key_path.write_bytes(private_pem)
        with override_settings(
            COURSE_AUDIT_SIGNING_KEY=str(key_path),
            COURSE_AUDIT_DIGEST_DIR=str(Path(folder) / "digests"),
        ):
            _remove_checkpoints()
            try:
                return _measure(run)
            finally:
                _remove_checkpoints()


def _measure(run: Any) -> Section:
    from course_audit import integrity
    from course_audit.conf import conf
    from course_audit.models import CourseEvent

    events = CourseEvent.objects.count()
    sealing = _timed(integrity.seal)
    made = sealing.pop("result")
    sealed = sum(checkpoint.count for checkpoint in made)
    if sealed != events:
        raise SystemExit(f"integrity: sealed {sealed:,} events of {events:,}")
    verifying = _timed(lambda: integrity.verify(digests=True))
    report = verifying.pop("result")
    if not report.intact or report.events != events:
        raise SystemExit(f"integrity: the verification says {report.summary()}")
    proof = _proof_figures(run)
    results = {
        "events": events,
        "checkpoints": len(made),
        "checkpoint_max_events": conf.CHECKPOINT_MAX_EVENTS,
        "seal": {**sealing, "events_per_second": events / sealing["seconds"]},
        "verify": {**verifying, "events_per_second": events / verifying["seconds"]},
        "proof": proof,
    }
    command = os.environ.get("BENCH_COMMAND") or "python -m bench.suite"
    section = Section(
        "integrity",
        "Tamper evidence: sealing, verifying, proofs",
        f"Measured by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load "
        f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs at its end (wall time "
        "counts the other jobs' share of the cores, CPU time does not). "
        f"`integrity.seal` (what `course_audit_checkpoint` runs) over all {events:,} events "
        f"of the run, none sealed before, into {len(made)} checkpoints of at most "
        f"{conf.CHECKPOINT_MAX_EVENTS:,} events; then `integrity.verify(digests=True)` (what "
        "`course_audit_verify --digests` runs) over them, which must find them intact. Each "
        "timed once, wall clock, with the CPU seconds of this process and of its database "
        "backend beside it. The proof: p50 of the proof endpoint for an event of the big "
        "course against that course's page one (default `per_page`), same token, "
        f"{proof['proof']['n']} requests each after 5 untimed, interleaved.",
        raw=results,
    )
    for name, figures in (("seal", sealing), ("verify", verifying)):
        rate = events / figures["seconds"]
        section.checks.append(
            Check(
                f"{name} {events:,} events, events per second",
                f"{number(figures['seconds'])} s",
                "—",
                rate,
                EVENTS_PER_SECOND,
            )
        )
    section.details.append(
        table(
            [
                "what",
                "seconds",
                "events/s",
                "CPU s (Python)",
                "CPU s (PostgreSQL)",
                "of which the read-ahead connection's",
            ],
            [
                [
                    name,
                    round(figures["seconds"], 1),
                    round(events / figures["seconds"]),
                    round(figures["cpu_seconds"], 1),
                    "—"
                    if figures["database_cpu_seconds"] is None
                    else round(figures["database_cpu_seconds"], 1),
                    round(figures["reader_database_cpu_seconds"], 1),
                ]
                for name, figures in (("seal", sealing), ("verify", verifying))
            ],
        )
    )
    page, answer = proof["page"], proof["proof"]
    section.details.append(
        f"A proof request: p50 {ms(answer['p50_ms'])} (p95 {ms(answer['p95_ms'])}) against "
        f"{ms(page['p50_ms'])} (p95 {ms(page['p95_ms'])}) for page one of the course's "
        f"events: {number(answer['p50_ms'] / page['p50_ms'])}{TIMES}. The proof reads its "
        f"checkpoint's sealed list ({proof['tree_size']:,} entries) and hashes its audit path."
    )
    return section


def _timed(call: Any) -> dict[str, Any]:
    """``call()`` timed: wall and CPU seconds, the database backends' CPU seconds (this
    connection's and the second connection's that reads ahead while sealing)."""
    backend = _backend_cpu_seconds()
    readers: list[float] = []
    cpu = time.process_time()
    started = time.perf_counter()
    with _reader_cpu_seconds(readers):
        result = call()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    after = _backend_cpu_seconds()
    reader = sum(readers)
    return {
        "result": result,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "database_cpu_seconds": None
        if backend is None or after is None
        else after - backend + reader,
        "reader_database_cpu_seconds": reader,
    }


@contextlib.contextmanager
def _reader_cpu_seconds(found: list[float]) -> Iterator[None]:
    """Collect in ``found`` the CPU seconds of each read-ahead connection's backend
    (``integrity._LeafReader``), read when its thread is done, before it closes."""
    from course_audit import integrity

    close = integrity._LeafReader._close

    def counted(reader: Any) -> None:
        close(reader)
        seconds = _pid_cpu_seconds(reader._raw.info.backend_pid)
        if seconds is not None:
            found.append(seconds)

    with mock.patch.object(integrity._LeafReader, "_close", counted):
        yield


def _backend_cpu_seconds() -> float | None:
    """The CPU seconds this connection's PostgreSQL backend has used, when it runs on this
    host (``/proc``); else None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [(pid,)] = cursor.fetchall()
    return _pid_cpu_seconds(pid)


def _pid_cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proof_figures(run: Any) -> dict[str, Any]:
    from bench import _api
    from course_audit.models import Checkpoint, CourseEvent

    course = run.dataset.course
    ids = CourseEvent.objects.filter(course=course).order_by("id").values_list("id", flat=True)
    event = CourseEvent.objects.get(pk=ids[len(ids) // 2])
    checkpoint = Checkpoint.objects.filter(after_id__lt=event.pk, last_id__gte=event.pk).get()
    client = _api.Client(run.dataset.token)
    proof_path = f"{_api.API_PREFIX}audit/course/events/{event.uuid}/proof"
    page_path = f"{_api.API_PREFIX}audit/course/courses/{course.pk}"
    answer = client.get(proof_path, {}).json()
    if answer["event"]["uuid"] != str(event.uuid):
        raise SystemExit(f"integrity: the proof of {event.uuid} is another event's")
    repeat = min(run.args.repeat, 100)
    cases = [
        Timed("proof", lambda: client.get(proof_path, {}), repeat, run.args.max_seconds),
        Timed("page", lambda: client.get(page_path, {}), repeat, run.args.max_seconds),
    ]
    measure_in_rounds(cases, warmup=5)
    return {
        "event": str(event.uuid),
        "tree_size": checkpoint.count,
        **{case.name: case.summary() for case in cases},
    }


def _remove_checkpoints() -> None:
    from django.db import connection

    from course_audit.models import Checkpoint

    table = connection.ops.quote_name(Checkpoint._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SET course_audit.allow_truncate = on")
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute("RESET course_audit.allow_truncate")
