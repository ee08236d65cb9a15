"""Big exports in the background (issue #17, item 5): above
``COURSE_AUDIT_EXPORT_BACKGROUND_ROWS`` an export becomes a job, written by the task worker
to the export storage with a manifest; its page shows the progress, cancels it, says why it
failed, and serves the file; a job is its requester's alone; a job survives a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from course_audit import exports, services, tasks
from course_audit.models import AccessRecord, AccountMembership, CourseEvent, ExportJob, SisBatch
from tests.helpers import named

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def export_dir(tmp_path: Path, settings: Any) -> Path:
    settings.COURSE_AUDIT_EXPORT_DIR = str(tmp_path / "exports")
    return tmp_path / "exports"


@pytest.fixture
def immediate(settings: Any, export_dir: Path) -> None:
    """Tasks run as they are queued (once the job is committed)."""
    settings.TASKS = IMMEDIATE


@pytest.fixture
def history(course: Any, add_events: Any) -> Any:
    """Biology 101: its creation and 12 updates, one a minute."""
    add_events(course, 12, when=T0, step=dt.timedelta(minutes=1))
    return course


def export_url(course: Any, **query: str) -> str:
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return reverse("course_audit:course_export", args=[course.pk]) + (
        f"?{params}" if params else ""
    )


def queue(client: Any, url: str, capture: Any) -> ExportJob:
    """POST the export (its task runs at commit, here), and the job it made."""
    with capture(execute=True):
        response = client.post(url)
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert response["Location"] == reverse("course_audit:export_job", args=[job.pk])
    job.refresh_from_db()
    return job


def streamed(response: Any) -> bytes:
    return b"".join(response.streaming_content)


# --- above the threshold, a job ------------------------------------------------------------


def test_a_small_export_still_streams(dept_admin_browser: Any, history: Any, settings: Any) -> None:
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = 13  # exactly the course's events
    response = dept_admin_browser.get(export_url(history, format="csv"))
    assert response.status_code == 200 and response.streaming
    assert len(streamed(response).decode().splitlines()) == 14
    assert not ExportJob.objects.exists()


def test_with_no_threshold_every_export_streams_uncounted(
    dept_admin_browser: Any, history: Any, settings: Any
) -> None:
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = None
    with CaptureQueriesContext(connection) as queries:
        response = dept_admin_browser.get(export_url(history, format="csv"))
        assert len(streamed(response).decode().splitlines()) == 14
    assert not [query for query in queries if "COUNT(" in query["sql"].upper()]


def test_a_big_export_offers_a_job_and_a_get_changes_nothing(
    dept_admin_browser: Any, history: Any, settings: Any
) -> None:
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = 12
    response = dept_admin_browser.get(export_url(history, format="jsonl"))
    html = response.content.decode()
    assert response.status_code == 200 and not response.streaming
    assert "more than 12 events" in html
    assert "Prepare the export in the background" in html and 'method="post"' in html
    assert not ExportJob.objects.exists() and not DBTaskResult.objects.exists()


def test_the_job_writes_the_filtered_file_and_its_manifest(
    dept_admin_browser: Any,
    history: Any,
    settings: Any,
    immediate: None,
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = 1
    url = export_url(history, format="csv", event_type="updated")
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = 10**6
    expected = streamed(dept_admin_browser.get(url))
    job = queue(dept_admin_browser, url, django_capture_on_commit_callbacks)

    assert job.state == ExportJob.State.DONE, job.error
    assert (job.scope, job.scope_id, job.format) == ("course", str(history.pk), "csv")
    assert job.subject_name == "Biology 101"
    assert job.filters == {"event_type": "updated"}
    assert job.rows_written == job.rows_total == 12
    assert job.requested_by == dept_admin_browser.user
    assert job.started_at and job.finished_at and job.task_id
    written = (export_dir / job.file_name).read_bytes()
    assert written == expected  # the streamed export's very bytes
    assert job.sha256 == hashlib.sha256(written).hexdigest()
    manifest = json.loads((export_dir / job.manifest_name).read_bytes())
    assert manifest["rows"] == 12 and manifest["sha256"] == job.sha256
    assert manifest["filters"] == {"event_type": "updated"}
    assert manifest["columns"] == exports.EXPORT_COLUMNS
    assert manifest["scope"] == "course" and manifest["scope_id"] == str(history.pk)
    assert manifest["subject"] == "Biology 101"
    assert manifest["requested_by"]["id"] == dept_admin_browser.user.pk

    page = dept_admin_browser.get(reverse("course_audit:export_job", args=[job.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert job.sha256 in html and "Download the file" in html
    assert f"Biology 101 (course {history.pk}), CSV" in html
    assert 'http-equiv="refresh"' not in html  # finished: no more refreshing
    download = dept_admin_browser.get(reverse("course_audit:export_job_download", args=[job.pk]))
    assert download.status_code == 200
    assert streamed(download) == expected
    assert download["Content-Disposition"] == (
        f'attachment; filename="course-{history.pk}-history.csv"'
    )
    got = dept_admin_browser.get(reverse("course_audit:export_job_manifest", args=[job.pk]))
    assert json.loads(got.content) == manifest
    listing = dept_admin_browser.get(reverse("course_audit:export_jobs")).content.decode()
    assert reverse("course_audit:export_job", args=[job.pk]) in listing


def test_a_queued_job_shows_its_progress_page_refreshing_itself(
    dept_admin_browser: Any, history: Any, export_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # The database backend: queued, waiting for a worker.
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    assert job.state == ExportJob.State.QUEUED
    assert DBTaskResult.objects.filter(pk=job.task_id, status="READY").exists()
    html = dept_admin_browser.get(reverse("course_audit:export_job", args=[job.pk])).content
    assert b'<meta http-equiv="refresh" content="3">' in html
    assert b"Cancel this export" in html and b"Download the file" not in html
    download = reverse("course_audit:export_job_download", args=[job.pk])
    assert dept_admin_browser.get(download).status_code == 404
    tasks.export_job_run(job.pk)  # what the worker does
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and job.rows_written == 13
    assert streamed(dept_admin_browser.get(download)).count(b"\n") == 14


def test_the_account_export_with_its_subaccounts_as_a_job(
    registrar_browser: Any,
    history: Any,
    root_account: Any,
    immediate: None,
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url = reverse("course_audit:account_export", args=[root_account.pk])
    job = queue(
        registrar_browser,
        f"{url}?format=jsonl&include_subaccounts=1",
        django_capture_on_commit_callbacks,
    )
    assert job.state == ExportJob.State.DONE and job.include_subaccounts
    lines = (export_dir / job.file_name).read_text().splitlines()
    assert len(lines) == job.rows_written == 13
    assert {json.loads(line)["course_id"] for line in lines} == {history.pk}


# --- cancelled, failed ---------------------------------------------------------------------


def test_a_cancelled_queued_job_never_runs(
    dept_admin_browser: Any, history: Any, export_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    response = dept_admin_browser.post(reverse("course_audit:export_job_cancel", args=[job.pk]))
    assert response.status_code == 302
    tasks.export_job_run(job.pk)
    job.refresh_from_db()
    assert job.state == ExportJob.State.CANCELLED and job.finished_at
    assert job.rows_written == 0 and not job.file_name and not export_dir.exists()
    html = dept_admin_browser.get(reverse("course_audit:export_job", args=[job.pk])).content
    assert b"cancelled" in html and b"Cancel this export" not in html
    assert services.export_job_cancel(job=job) is False  # finished: nothing to cancel


def test_a_job_cancelled_while_running_stops_at_its_next_chunk_and_keeps_no_file(
    dept_admin_browser: Any,
    history: Any,
    export_dir: Path,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    monkeypatch.setattr(tasks, "PROGRESS_ROWS", 2)
    walk = exports.walk

    def cancelled_midway(*args: Any) -> Any:
        for number, row in enumerate(walk(*args), 1):
            if number == 5:
                services.export_job_cancel(job=ExportJob.objects.get(pk=job.pk))
            yield row

    monkeypatch.setattr(tasks.exports, "walk", cancelled_midway)
    tasks.export_job_run(job.pk)
    job.refresh_from_db()
    assert job.state == ExportJob.State.CANCELLED
    assert job.rows_written == 4  # the last progress recorded before it stopped
    assert not job.file_name and not any(export_dir.rglob("*.csv"))


def test_a_grant_revoked_before_the_job_runs_fails_it_and_says_why(
    dept_admin_browser: Any, history: Any, export_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    AccountMembership.objects.filter(user=dept_admin_browser.user).update(
        workflow_state=AccountMembership.WorkflowState.DELETED
    )
    tasks.export_job_run(job.pk)
    job.refresh_from_db()
    assert job.state == ExportJob.State.FAILED and job.error == tasks.ACCESS_LOST
    assert not any(export_dir.rglob("*.csv"))
    html = dept_admin_browser.get(reverse("course_audit:export_job", args=[job.pk])).content
    assert b"The requester may no longer see these events" in html and b'role="alert"' in html


def test_a_storage_that_fails_fails_the_job_and_says_why(
    dept_admin_browser: Any,
    history: Any,
    settings: Any,
    tmp_path: Path,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.COURSE_AUDIT_EXPORT_DIR = str(blocker)
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    assert job.state == ExportJob.State.FAILED
    assert job.error.startswith(("FileExistsError", "NotADirectoryError"))
    page = dept_admin_browser.get(reverse("course_audit:export_job", args=[job.pk]))
    assert page.status_code == 200 and job.error.split(":")[0] in page.content.decode()


def test_a_revoked_grant_stops_the_download(
    dept_admin_browser: Any,
    history: Any,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    assert job.state == ExportJob.State.DONE
    AccountMembership.objects.filter(user=dept_admin_browser.user).update(
        workflow_state=AccountMembership.WorkflowState.DELETED
    )
    for name in ("export_job_download", "export_job_manifest"):
        response = dept_admin_browser.get(reverse(f"course_audit:{name}", args=[job.pk]))
        assert response.status_code == 404


# --- whose -----------------------------------------------------------------------------------


def test_a_job_is_its_requesters_alone(
    dept_admin_browser: Any,
    registrar_browser: Any,
    browser: Any,
    make_user: Any,
    history: Any,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    # The registrar audits the whole tenant, the course included: still not their job.
    for name in ("export_job", "export_job_download", "export_job_manifest"):
        url = reverse(f"course_audit:{name}", args=[job.pk])
        assert registrar_browser.get(url).status_code == 404
    cancel = reverse("course_audit:export_job_cancel", args=[job.pk])
    assert registrar_browser.post(cancel).status_code == 404
    listing = registrar_browser.get(reverse("course_audit:export_jobs")).content.decode()
    assert reverse("course_audit:export_job", args=[job.pk]) not in listing
    superuser = browser("root")
    superuser.user.is_superuser = True
    superuser.user.save()
    download = superuser.get(reverse("course_audit:export_job_download", args=[job.pk]))
    assert download.status_code == 200 and streamed(download).startswith(b"id,created_at")


def test_a_post_to_an_export_needs_the_scope(
    browser: Any, history: Any, chemistry: Any, admin_role: Any
) -> None:
    chemist = browser("chemist", (chemistry, admin_role))
    assert chemist.post(export_url(history)).status_code == 403
    assert not ExportJob.objects.exists()


# --- who looked: the access records of a job ------------------------------------------------


def refuse_records(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    """An ``execute_wrapper``: every access record's INSERT fails, as when the database
    refuses it."""
    if sql.startswith('INSERT INTO "course_audit_accessrecord"'):
        raise OperationalError("the access log cannot be written")
    return execute(sql, params, many, context)


def records(**filters: Any) -> list[AccessRecord]:
    return list(AccessRecord.objects.filter(**filters).order_by("id"))


def test_the_task_and_each_download_write_access_records_and_the_manifest_none(
    dept_admin_browser: Any,
    history: Any,
    root_account: Any,
    settings: Any,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = 1
    user = dept_admin_browser.user
    job = queue(
        dept_admin_browser,
        export_url(history, format="csv", event_type="updated"),
        django_capture_on_commit_callbacks,
    )
    assert job.state == ExportJob.State.DONE, job.error
    assert job.request_id is not None and job.client_addr == "127.0.0.1"
    [read] = records(surface="job")
    assert (read.user_id, read.user_name) == (user.pk, user.get_username())
    assert (read.scope, read.scope_id, read.root_account_id) == (
        "course",
        str(history.pk),
        root_account.pk,
    )
    assert (read.count, read.complete) == (12, True)
    assert read.filters == {"event_type": "updated"}
    # The request that queued it, from where; the worker read it, not a request.
    assert (read.request_id, read.client_addr) == (job.request_id, "127.0.0.1")
    assert read.http_method == "TASK"
    assert read.path == reverse("course_audit:export_job", args=[job.pk])
    assert not records(surface="export")

    download = reverse("course_audit:export_job_download", args=[job.pk])
    for _ in range(2):
        assert streamed(dept_admin_browser.get(download)).count(b"\n") == 13
    downloads = records(surface="export")
    assert len(downloads) == 2  # each download is a disclosure of its own
    for record in downloads:
        assert (record.user_id, record.scope, record.scope_id) == (
            user.pk,
            "course",
            str(history.pk),
        )
        assert (record.root_account_id, record.count) == (root_account.pk, 12)
        assert record.filters == {"event_type": "updated"}
        assert (record.http_method, record.path) == ("GET", download)
    manifest = reverse("course_audit:export_job_manifest", args=[job.pk])
    assert dept_admin_browser.get(manifest).status_code == 200
    assert len(records(surface="export")) == 2  # the manifest shows no event


def test_a_superusers_download_of_a_sub_account_job_is_recorded_as_theirs(
    registrar_browser: Any,
    browser: Any,
    history: Any,
    root_account: Any,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    admin_browser = browser("root")
    admin_browser.user.is_superuser = True
    admin_browser.user.save()
    url = reverse("course_audit:account_export", args=[root_account.pk])
    job = queue(
        registrar_browser, f"{url}?include_subaccounts=1", django_capture_on_commit_callbacks
    )
    [read] = records(surface="job")
    assert read.filters == {"include_subaccounts": "1"}
    assert (read.scope, read.scope_id, read.count) == ("account", str(root_account.pk), 13)
    download = admin_browser.get(reverse("course_audit:export_job_download", args=[job.pk]))
    assert streamed(download).count(b"\n") == 14
    [record] = records(surface="export")
    assert record.user_id == admin_browser.user.pk != registrar_browser.user.pk
    assert record.root_account_id == root_account.pk and record.count == 13


def test_a_job_whose_read_cannot_be_recorded_fails_and_keeps_no_file(
    dept_admin_browser: Any,
    history: Any,
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    with connection.execute_wrapper(refuse_records):
        tasks.export_job_run(job.pk)
    job.refresh_from_db()
    assert job.state == ExportJob.State.FAILED
    assert "the access log cannot be written" in job.error
    assert not job.file_name and not job.sha256
    assert not [path for path in export_dir.rglob("*") if path.is_file()]  # nor its manifest
    assert not records()
    download = reverse("course_audit:export_job_download", args=[job.pk])
    assert dept_admin_browser.get(download).status_code == 404


def test_a_download_that_cannot_be_recorded_is_refused(
    dept_admin_browser: Any,
    history: Any,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    with connection.execute_wrapper(refuse_records):
        response = dept_admin_browser.get(
            reverse("course_audit:export_job_download", args=[job.pk])
        )
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert b"Biology" not in b"".join(getattr(response, "streaming_content", [response.content]))


def test_with_the_access_log_off_a_job_writes_no_record(
    dept_admin_browser: Any,
    history: Any,
    settings: Any,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.COURSE_AUDIT_ACCESS_LOG = False
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    assert job.state == ExportJob.State.DONE
    download = dept_admin_browser.get(reverse("course_audit:export_job_download", args=[job.pk]))
    assert download.status_code == 200 and streamed(download).count(b"\n") == 14
    assert not records()


# --- old jobs go --------------------------------------------------------------------------------


def test_prune_deletes_old_finished_jobs_and_their_files_only(
    dept_admin_browser: Any,
    history: Any,
    export_dir: Path,
    immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    old = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    recent = ExportJob.objects.create(
        requested_by=dept_admin_browser.user, scope="course", scope_id=str(history.pk), format="csv"
    )
    tasks.export_job_run(recent.pk)
    waiting = ExportJob.objects.create(
        requested_by=dept_admin_browser.user, scope="course", scope_id=str(history.pk), format="csv"
    )
    cancelled = ExportJob.objects.create(
        requested_by=dept_admin_browser.user,
        scope="course",
        scope_id=str(history.pk),
        format="csv",
        state=ExportJob.State.CANCELLED,
    )
    now = dt.datetime.now(dt.UTC)
    ExportJob.objects.filter(pk=old.pk).update(finished_at=now - dt.timedelta(days=31))
    ExportJob.objects.filter(pk__in=[waiting.pk, cancelled.pk]).update(
        created_at=now - dt.timedelta(days=40)
    )
    old.refresh_from_db()
    files = {old.file_name, old.manifest_name}
    assert all((export_dir / name).is_file() for name in files)

    out = StringIO()
    call_command("course_audit_exports", "--prune", "--dry-run", stdout=out)
    assert f"Would delete export job {old.pk}:" in out.getvalue()
    assert "Would delete 2 export job(s) older than 30 day(s)." in out.getvalue()
    assert ExportJob.objects.count() == 4

    out = StringIO()
    call_command("course_audit_exports", "--prune", stdout=out)
    assert "Deleted 2 export job(s) older than 30 day(s)." in out.getvalue()
    assert set(ExportJob.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    assert not any((export_dir / name).exists() for name in files)
    recent.refresh_from_db()
    assert (export_dir / recent.file_name).is_file()

    call_command("course_audit_exports", "--prune", "--keep-days", "1", stdout=StringIO())
    assert ExportJob.objects.filter(pk=recent.pk).exists()  # finished today


def test_prune_keeps_everything_without_a_retention(settings: Any) -> None:
    settings.COURSE_AUDIT_EXPORT_RETENTION_DAYS = None
    out = StringIO()
    call_command("course_audit_exports", "--prune", stdout=out)
    assert "Every export job is kept" in out.getvalue()
    with pytest.raises(CommandError, match="Nothing to do"):
        call_command("course_audit_exports")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("course_audit_exports", "--prune", "--keep-days", "0")


# --- a restart --------------------------------------------------------------------------------


def test_a_job_left_running_is_queued_again_on_recovery(
    dept_admin_browser: Any,
    history: Any,
    settings: Any,
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    ExportJob.objects.filter(pk=job.pk).update(state=ExportJob.State.RUNNING, rows_written=7)
    settings.TASKS = IMMEDIATE
    out = StringIO()
    call_command("course_audit_exports", "--recover", stdout=out)
    assert out.getvalue() == "1 export job(s) queued again.\n"
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and job.rows_written == 13
    assert job.error == tasks.INTERRUPTED


def _database_url() -> str:
    params = connection.settings_dict
    user = params["USER"] or "postgres"
    return f"postgres://{user}@{params['HOST']}:{params['PORT'] or 5432}/{params['NAME']}"


def _manage(*args: str, export_dir: Path) -> str:
    """A management command in a process of its own (PostgreSQL: the test database is on the
    server); on SQLite (an in-memory test database) in this one, as a fresh command."""
    if connection.vendor != "postgresql":
        # db_worker installs its own SIGINT and SIGTERM handlers: pytest's come back after.
        handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        out = StringIO()
        try:
            call_command(*args, stdout=out, stderr=StringIO())
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
        return out.getvalue()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        # The suite's own settings (a custom user model's run has its own tables).
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "COURSE_AUDIT_EXPORT_DIR": str(export_dir),
        "COURSE_AUDIT_SIGNING_KEY": "",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.mark.django_db(transaction=True)
def test_queued_and_interrupted_jobs_outlive_a_restart_with_the_database_worker(
    dept_admin_browser: Any, history: Any, export_dir: Path
) -> None:
    """The server queues two jobs and goes away; one was being written by a worker that was
    killed. A new worker process, after ``course_audit_exports --recover``, writes both
    (on SQLite, whose test database is in memory, the commands run in this process)."""
    first = dept_admin_browser.post(export_url(history))
    second = dept_admin_browser.post(export_url(history, format="jsonl"))
    assert first.status_code == second.status_code == 302
    jobs = list(ExportJob.objects.order_by("pk"))
    assert [job.state for job in jobs] == ["queued", "queued"]
    assert DBTaskResult.objects.filter(status="READY").count() == 2
    # The first one's worker was killed mid-way: its task and job are left running.
    DBTaskResult.objects.filter(pk=jobs[0].task_id).update(status="RUNNING")
    ExportJob.objects.filter(pk=jobs[0].pk).update(state="running", rows_written=5)

    recovered = _manage("course_audit_exports", "--recover", export_dir=export_dir)
    assert "1 export job(s) queued again" in recovered
    _manage("db_worker", "--batch", "--no-reload", "--no-startup-delay", export_dir=export_dir)

    for job in jobs:
        job.refresh_from_db()
        assert job.state == ExportJob.State.DONE, job.error
        assert job.rows_written == 13
        data = (export_dir / job.file_name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == job.sha256
    assert FileSystemStorage(location=export_dir).exists(jobs[1].manifest_name)
    assert CourseEvent.objects.count() == 13


# --- more scopes, formats and pages ----------------------------------------------------------


def test_the_bound_is_a_count_that_stops_one_past_the_threshold(
    dept_admin_browser: Any, history: Any, settings: Any
) -> None:
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = 5
    with CaptureQueriesContext(connection) as queries:
        response = dept_admin_browser.get(export_url(history))
    assert response.status_code == 200 and b"more than 5 events" in response.content
    counts = [query["sql"] for query in queries if "COUNT(" in query["sql"].upper()]
    assert len(counts) == 1 and "LIMIT 6" in counts[0]


def test_a_persons_export_as_a_job(
    dept_admin_browser: Any,
    course: Any,
    make_user: Any,
    immediate: None,
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    priya = make_user("praman", **named("Priya", "Raman"))
    services.course_update(course=course, name="Renamed by Priya", user=priya)
    services.course_publish(course=course, user=priya)
    url = reverse("course_audit:person_export", args=[priya.pk]) + "?format=jsonl"
    job = queue(dept_admin_browser, url, django_capture_on_commit_callbacks)
    assert (job.state, job.scope, job.subject_name) == ("done", "person", "Priya Raman")
    lines = (export_dir / job.file_name).read_text().splitlines()
    assert len(lines) == job.rows_written == 2
    assert {json.loads(line)["user_id"] for line in lines} == {priya.pk}
    download = dept_admin_browser.get(reverse("course_audit:export_job_download", args=[job.pk]))
    assert download["Content-Type"] == "application/x-ndjson"
    assert streamed(download).decode().splitlines() == lines


def test_a_running_job_shows_how_far_it_got(
    dept_admin_browser: Any, history: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = queue(dept_admin_browser, export_url(history), django_capture_on_commit_callbacks)
    ExportJob.objects.filter(pk=job.pk).update(state="running", rows_written=500, rows_total=2000)
    html = dept_admin_browser.get(reverse("course_audit:export_job", args=[job.pk])).content
    assert b'<progress max="2000" value="500"' in html and b"500 of 2000 rows" in html
    assert b'http-equiv="refresh"' in html and b"Cancel this export" in html


def test_bad_filters_or_format_queue_nothing(dept_admin_browser: Any, history: Any) -> None:
    assert dept_admin_browser.post(export_url(history, start_time="someday")).status_code == 400
    assert dept_admin_browser.post(export_url(history, format="xlsx")).status_code == 400
    assert not ExportJob.objects.exists()


def test_the_jobs_pages_need_a_login(client: Any, history: Any) -> None:
    for url in (reverse("course_audit:export_jobs"), reverse("course_audit:export_job", args=[1])):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response["Location"]


def test_a_sis_imports_export_as_a_job(
    registrar_browser: Any,
    history: Any,
    add_events: Any,
    root_account: Any,
    immediate: None,
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    batch = SisBatch.objects.create(root_account=root_account, filename="fall.csv")
    imported = add_events(history, 4, when=T0 + dt.timedelta(days=1), sis_batch=batch)
    url = reverse("course_audit:sis_batch_export", args=[batch.pk]) + "?format=jsonl"
    job = queue(registrar_browser, url, django_capture_on_commit_callbacks)
    assert (job.state, job.scope, job.subject_name) == ("done", "sis_batch", "fall.csv")
    lines = (export_dir / job.file_name).read_text().splitlines()
    assert {json.loads(line)["id"] for line in lines} == {str(event.uuid) for event in imported}
