"""Background exports: the task that writes an ``ExportJob``'s file, queued through Django's
task framework (``django-tasks`` on Django 5.2) and run by the host's task worker.

The file is written in chunks (``exports.walk``: memory stays flat whatever the size) to a
temporary file, hashed as it goes, then saved to ``COURSE_AUDIT_EXPORT_STORAGE`` with its
manifest beside it (``<file>.manifest.json``: the scope, filters, time zone, columns, row
count, times and SHA-256). Each chunk records the progress and is where a cancelled job
stops. The requester's access is checked again when the task runs, with their grants of
that moment: a grant revoked since the job was queued fails it.

Finished jobs are kept ``COURSE_AUDIT_EXPORT_RETENTION_DAYS`` (30) days, then
``export_jobs_prune`` (``manage.py course_audit_exports --prune``, a daily job) deletes them
with their files.

A job survives a restart: its row, and its task's in a database backend, are in the
database. A worker killed while it ran leaves the job ``running``: ``export_jobs_recover``
(``manage.py course_audit_exports --recover``, run before the workers start) queues it
again from the start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import zoneinfo
from collections.abc import Iterator
from typing import IO, Any

from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_noop
from django_tasks import task

from course_audit import access_log, exports, selectors
from course_audit.conf import conf
from course_audit.filters import CourseEventFilterSet
from course_audit.models import ExportJob, Permission

# The job's progress is recorded, and its cancellation noticed, every this many rows.
PROGRESS_ROWS = exports.EXPORT_CHUNK
MANIFEST_VERSION = 1

# Why a job failed, as stored (in English) and shown translated (``{% translate %}``).
ACCESS_LOST = gettext_noop(
    "The requester may no longer see these events (a grant was revoked, or the course or "
    "account is gone): nothing was written."
)
FILTERS_INVALID = gettext_noop("The filters are no longer valid: nothing was written.")
INTERRUPTED = gettext_noop(
    "The worker stopped while writing this export; it was queued again from the start."
)


def export_storage() -> Storage:
    """``COURSE_AUDIT_EXPORT_STORAGE``'s storage (default: ``COURSE_AUDIT_EXPORT_DIR``)."""
    value = conf.EXPORT_STORAGE
    if value is None:
        return FileSystemStorage(location=conf.EXPORT_DIR)
    if isinstance(value, str):
        return storages[value]
    return storages.create_storage(value)


def download_name(job: ExportJob) -> str:
    """The file's name for the viewer, as the streamed exports name theirs."""
    return f"{job.scope}-{job.scope_id}-history.{job.format}"


class _Cancelled(Exception):
    """The job left ``running`` (cancelled) while it was being written."""


@task()
def run_export(job_id: int) -> None:
    """The task: write export job ``job_id`` (``export_job_run``)."""
    export_job_run(job_id)


def export_job_run(job_id: int) -> None:
    """Write the job's file and manifest, if it is still queued (a cancelled job, or one
    another worker took, is left alone); a failure is recorded on the job, with why."""
    now = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, state=ExportJob.State.QUEUED).update(
        state=ExportJob.State.RUNNING, started_at=now, heartbeat_at=now, rows_written=0
    )
    if not claimed:
        return
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    try:
        _write(job)
    except _Cancelled:
        return
    except (Http404, PermissionDenied):
        _fail(job, ACCESS_LOST)
    except (DatabaseError, OSError) as error:
        # The database or the storage failed: say which, as the worker saw it.
        _fail(job, f"{type(error).__name__}: {error}")


def _fail(job: ExportJob, reason: str) -> None:
    ExportJob.objects.filter(pk=job.pk, state=ExportJob.State.RUNNING).update(
        state=ExportJob.State.FAILED, error=reason, finished_at=timezone.now()
    )


def _write(job: ExportJob) -> None:
    grants = selectors.load_grants(job.requested_by, Permission.VIEW_COURSE_CHANGES)
    scope = selectors.export_job_events(job, grants)
    zone = zoneinfo.ZoneInfo(job.time_zone)
    with timezone.override(zone):
        filterset = CourseEventFilterSet(job.filters, queryset=scope.events)
        if not filterset.is_valid():
            _fail(job, FILTERS_INVALID)
            return
        filtered = filterset.qs
    total = filtered.order_by().count()
    ExportJob.objects.filter(pk=job.pk).update(rows_total=total)
    rows = _counted(job, exports.walk(filtered, *filterset.ranges(scope.partitions)))
    lines = (
        exports.csv_lines(rows, zone)
        if job.format == ExportJob.Format.CSV
        else exports.jsonl_lines(rows, zone)
    )
    digest = hashlib.sha256()
    storage = export_storage()
    with tempfile.TemporaryFile() as spool:
        for line in lines:
            data = line.encode()
            spool.write(data)
            digest.update(data)
        written = job.rows_written
        spool.seek(0)
        name = storage.save(f"job-{job.pk}/{download_name(job)}", File(spool))
    finished = timezone.now()
    job.file_name, job.sha256, job.finished_at = name, digest.hexdigest(), finished
    job.rows_total = total
    storage.save(job.manifest_name, ContentFile(manifest_bytes(job)))
    target = access_log.Target(access_log.Scope(job.scope), job.scope_id, scope.root_account_id)
    try:
        # Done and recorded together: a job whose read cannot be recorded keeps no file.
        with transaction.atomic():
            done = ExportJob.objects.filter(pk=job.pk, state=ExportJob.State.RUNNING).update(
                state=ExportJob.State.DONE,
                rows_written=written,
                file_name=name,
                sha256=job.sha256,
                finished_at=finished,
                heartbeat_at=finished,
            )
            if done:
                access_log.record_job(job, target=target, count=written)
    except DatabaseError:
        _discard(storage, job)
        raise
    if not done:  # cancelled as the last rows were written: no file is kept
        _discard(storage, job)


def _discard(storage: Storage, job: ExportJob) -> None:
    storage.delete(job.manifest_name)
    storage.delete(job.file_name)


def _counted(job: ExportJob, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``rows``, counted on ``job.rows_written``; every ``PROGRESS_ROWS`` the count is
    recorded, and a job no longer running (cancelled) stops here."""
    for row in rows:
        job.rows_written += 1
        if job.rows_written % PROGRESS_ROWS == 0:
            _progress(job)
        yield row
    _progress(job)


def _progress(job: ExportJob) -> None:
    still_running = ExportJob.objects.filter(pk=job.pk, state=ExportJob.State.RUNNING).update(
        rows_written=job.rows_written, heartbeat_at=timezone.now()
    )
    if not still_running:
        raise _Cancelled


def manifest(job: ExportJob) -> dict[str, Any]:
    """What the file holds and how to check it: written beside it, shown on the job's page."""
    user = job.requested_by
    return {
        "manifest_version": MANIFEST_VERSION,
        "job": job.pk,
        "file": download_name(job),
        "format": job.format,
        "scope": job.scope,
        "scope_id": job.scope_id,
        "subject": job.subject_name,
        "include_subaccounts": job.include_subaccounts,
        "filters": job.filters,
        "time_zone": job.time_zone,
        "columns": exports.EXPORT_COLUMNS,
        "rows": job.rows_written,
        "sha256": job.sha256,
        "requested_by": {"id": user.pk, "login": user.get_username()},
        "requested_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def manifest_bytes(job: ExportJob) -> bytes:
    return json.dumps(manifest(job), cls=DjangoJSONEncoder, indent=2).encode() + b"\n"


def open_file(job: ExportJob) -> IO[bytes]:
    """The job's file, from the export storage, for reading."""
    return export_storage().open(job.file_name, "rb")


def export_jobs_recover() -> list[int]:
    """Queue again, from the start, every job a stopped worker left ``running`` (run before
    the workers start: a running worker's job would be written twice). Their ids."""
    ids = list(ExportJob.objects.filter(state=ExportJob.State.RUNNING).values_list("pk", flat=True))
    for job_id in ids:
        ExportJob.objects.filter(pk=job_id, state=ExportJob.State.RUNNING).update(
            state=ExportJob.State.QUEUED, rows_written=0, started_at=None, error=INTERRUPTED
        )
        enqueue(job_id)
    return ids


def export_jobs_prune(
    *, keep_days: int, dry_run: bool = False, now: dt.datetime | None = None
) -> list[ExportJob]:
    """Delete every finished job (done, failed or cancelled) that finished more than
    ``keep_days`` days ago, with its file and manifest; a queued or running one is never
    touched. ``dry_run`` only lists them. Returns the jobs, oldest first."""
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    cutoff = (now or timezone.now()) - dt.timedelta(days=keep_days)
    # A job cancelled before it started has no finish time of its own but its creation.
    old = ExportJob.objects.filter(state__in=ExportJob.FINISHED).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    )
    jobs = list(old.select_related("requested_by").order_by("created_at", "id"))
    if dry_run or not jobs:
        return jobs
    storage = export_storage()
    for job in jobs:
        # The file first: a file whose job is gone would be kept forever.
        if job.file_name:
            _discard(storage, job)
        ExportJob.objects.filter(pk=job.pk).delete()
    return jobs


def enqueue(job_id: int) -> None:
    """Queue the job's task and keep its id on the job."""
    result = run_export.enqueue(job_id)
    ExportJob.objects.filter(pk=job_id).update(task_id=str(result.id))
