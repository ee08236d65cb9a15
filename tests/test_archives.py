"""Retention that keeps history provable (``course_audit.archives``): months archived and
checked before they are dropped, signed prune notes that verification accepts and nothing
more, legal holds, ``verify --archive`` and ``--restore``.

Tampering is done as an attacker would, as a superuser with the triggers bypassed.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from course_audit import archives, integrity, merkle, partitions, services
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent, LegalHold, PruneNote

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions need PostgreSQL"
)


def months_ago(months: int) -> dt.datetime:
    return partitions.add_months(partitions.month_start(timezone.now()), -months)


def label(months: int) -> str:
    return f"{months_ago(months):%Y-%m}"


def part(months: int) -> str:
    return partitions.month_partition_name(months_ago(months))


def run(command: str, *args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def verify(*args: str) -> tuple[int, str]:
    status, out, _ = run("course_audit_verify", *args)
    return status, out


def prune(*args: str) -> tuple[str, str]:
    _, out, err = run("course_audit_partitions", "--prune", "--keep-months", "14", *args)
    return out, err


def tamper(sql: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params or [])
        cursor.execute("SET session_replication_role = origin")


def rows_of(events: Any) -> list[dict[str, Any]]:
    return list(events.order_by("id").values())


class Aged:
    """Two months past retention (16 and 15 months back) and events of this month, the
    oldest month's ids interleaved with this month's, all sealed."""

    def __init__(self, department: Any) -> None:
        partitions.ensure_partitions(start=months_ago(16))
        at = months_ago(16) + dt.timedelta(days=2)
        with audit_context(occurred_at=at):
            self.old = services.course_create(account=department, name="Old")
            services.course_update(course=self.old, name="Old, renamed")
            services.course_publish(course=self.old)
        self.now = services.course_create(account=department, name="Now")
        with audit_context(occurred_at=at + dt.timedelta(days=3)):
            services.course_update(course=self.old, name="Old, renamed again")
        with audit_context(occurred_at=months_ago(15) + dt.timedelta(days=3)):
            self.older = services.course_create(account=department, name="Fifteen months")
        services.course_update(course=self.now, name="Now, renamed")
        run("course_audit_checkpoint")

    def in_month(self, months: int) -> Any:
        start = months_ago(months)
        return CourseEvent.objects.filter(
            created_at__gte=start, created_at__lt=partitions.add_months(start, 1)
        )


@pytest.fixture
def aged(keys: Path, department: Any) -> Aged:
    if connection.vendor != "postgresql":
        pytest.skip("partitions need PostgreSQL")
    return Aged(department)


def archive_path(keys: Path, months: int) -> Path:
    (found,) = (keys / "store" / "archives" / label(months)).glob("*.jsonl.gz")
    return found


def read_lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path) as lines:
        return [json.loads(line) for line in lines]


# The clean path


def test_a_prune_archives_each_month_drops_it_and_verification_stays_clean(
    aged: Aged, keys: Path
) -> None:
    sixteen, fifteen = rows_of(aged.in_month(16)), rows_of(aged.in_month(15))
    assert len(sixteen) == 4 and len(fifteen) == 1
    out, err = prune()
    assert f"dropped {part(16)}" in out and "4 rows, archived to archives/" in out
    assert f"dropped {part(15)}" in out and err == ""
    assert part(16) not in [p.name for p in partitions.list_partitions()]
    assert not aged.in_month(16).exists()

    notes = {note.partition: note for note in PruneNote.objects.all()}
    note = notes[part(16)]
    manifest = json.loads(note.manifest)
    ids = [row["id"] for row in sixteen]
    assert manifest["count"] == 4 and note.count == 4
    # This month's course was made between the third and the fourth: two runs.
    assert manifest["runs"] == [[ids[0], ids[2]], [ids[3], ids[3]]]
    assert manifest["checkpoints"][0]["sequence"] == 1
    assert note.key_id == merkle.key_id(integrity.signing_key().public_key())

    path = archive_path(keys, 16)
    lines = read_lines(path)
    assert [line["id"] for line in lines] == ids
    assert lines[1]["event_data"] == sixteen[1]["event_data"]
    assert lines[0]["created_at"] == merkle.utc_timestamp(sixteen[0]["created_at"])

    status, report = verify("--digests")
    assert status == 0, report
    assert "5 pruned by retention, 0 backfilled; 0 problems" in report
    status, report = verify("--archive", str(path))
    assert status == 0 and "intact: archive" in report and "4 events" in report


def test_an_archived_month_restores_unchanged_and_verifies_as_before(
    aged: Aged, keys: Path
) -> None:
    before = rows_of(aged.in_month(16))
    prune()
    status, out, _ = run("course_audit_partitions", "--restore", label(16))
    assert status == 0 and f"restored 4 events of {label(16)}" in out
    assert rows_of(aged.in_month(16)) == before
    status, report = verify()
    assert status == 0 and "1 pruned by retention" in report  # the 15-month-old one
    # Restoring twice would duplicate the month: refused.
    with pytest.raises(CommandError, match="already holds events"):
        run("course_audit_partitions", "--restore", label(16))


@postgres_only
def test_restore_names_a_month_never_archived() -> None:
    with pytest.raises(CommandError, match="no prune note for 2001-01"):
        run("course_audit_partitions", "--restore", "2001-01")
    with pytest.raises(CommandError, match="YYYY-MM"):
        run("course_audit_partitions", "--restore", "January")


# Tampering with archives and notes


def test_an_edited_archive_is_reported_naming_the_event_and_is_not_restored(
    aged: Aged, keys: Path
) -> None:
    victim = rows_of(aged.in_month(16))[1]
    prune()
    path = archive_path(keys, 16)
    lines = read_lines(path)
    lines[1]["event_data"] = {"name": ["Old", "Forged"]}
    path.write_bytes(gzip.compress(b"".join(archives.archive_line(line) for line in lines)))
    status, report = verify("--archive", str(path))
    assert status == 1 and "NOT INTACT" in report
    assert "SHA-256 or size is not the manifest's" in report
    assert f"event {victim['uuid']} (id {victim['id']}) differs from what checkpoint #1" in report
    with pytest.raises(CommandError, match="does not verify"):
        run("course_audit_partitions", "--restore", label(16))


def test_an_event_deleted_before_the_prune_keeps_its_month(aged: Aged) -> None:
    victim = rows_of(aged.in_month(16))[1]
    tamper("DELETE FROM course_audit_courseevent WHERE id = %s", [victim["id"]])
    out, err = prune()
    assert f"kept {part(16)}" in err and "does not verify against the checkpoints" in err
    assert f"sealed events between ids {victim['id'] - 1} and {victim['id'] + 1}" in err
    assert part(16) in [p.name for p in partitions.list_partitions()]
    assert f"dropped {part(15)}" in out  # the other month went on
    status, report = verify()
    assert status == 1 and f"event {victim['uuid']} (id {victim['id']})" in report


def test_a_prune_note_signed_by_another_key_launders_nothing(aged: Aged) -> None:
    victim = rows_of(aged.in_month(16))[1]
    tamper("DELETE FROM course_audit_courseevent WHERE id = %s", [victim["id"]])
    other, _, _ = integrity.generate_key_pair()
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(other, password=None)
    document = {
        "v": integrity.MANIFEST_VERSION,
        "kind": integrity.MANIFEST_KIND,
        "partition": part(16),
        "runs": [[victim["id"], victim["id"]]],
        "key_id": merkle.key_id(key.public_key()),  # type: ignore[arg-type]
        "public_key": merkle.public_key_b64(key.public_key()),  # type: ignore[arg-type]
    }
    forged = integrity.sign_manifest(document, key)  # type: ignore[arg-type]
    PruneNote.objects.create(
        month=months_ago(16),
        partition=part(16),
        count=1,
        archive="archives/forged.jsonl.gz",
        created_at=timezone.now(),
        manifest=merkle.canonical_json(document).decode(),
        key_id=document["key_id"],
        signature=forged.signature,
        hash=forged.hash,
    )
    status, report = verify()
    assert status == 1
    assert f"note_altered: the prune note of {part(16)}" in report and "not trusted" in report
    assert f"deleted: event {victim['uuid']} (id {victim['id']})" in report


def test_a_deleted_prune_note_turns_the_pruned_events_into_deleted_ones(aged: Aged) -> None:
    prune()
    assert verify()[0] == 0
    tamper("DELETE FROM course_audit_prunenote WHERE partition = %s", [part(15)])
    status, report = verify()
    assert status == 1 and "1 event deleted" in report.splitlines()[-1]


def test_an_edited_prune_note_is_reported(aged: Aged) -> None:
    prune()
    note = PruneNote.objects.get(partition=part(16))
    manifest = json.loads(note.manifest)
    manifest["runs"][0][1] += 1000
    tamper(
        "UPDATE course_audit_prunenote SET manifest = %s WHERE id = %s",
        [merkle.canonical_json(manifest).decode(), note.pk],
    )
    status, report = verify()
    assert status == 1 and "does not match its content and signature (altered)" in report


def test_prune_notes_are_append_only(aged: Aged) -> None:
    prune()
    note = PruneNote.objects.first()
    assert note is not None
    for change in (lambda: PruneNote.objects.update(count=0), note.delete):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()


def test_a_month_with_unsealed_events_is_not_pruned(aged: Aged, department: Any) -> None:
    with audit_context(occurred_at=months_ago(16) + dt.timedelta(days=9)):
        services.course_create(account=department, name="Late backfill")
    _, err = prune()
    assert f"kept {part(16)}" in err and "1 of its events are not sealed yet" in err
    assert part(16) in [p.name for p in partitions.list_partitions()]


# Legal holds


def test_a_hold_on_a_course_keeps_its_months_until_released(aged: Aged, make_user: Any) -> None:
    registrar = make_user("registrar")
    status, out, _ = run(
        "course_audit_hold",
        "place",
        "--course",
        str(aged.old.pk),
        "--reason",
        "Case 2026-14",
        "--by",
        registrar.get_username(),
    )
    hold = LegalHold.objects.get()
    assert status == 0 and f"placed {hold}: Case 2026-14" in out
    assert hold.created_by == registrar and hold.course == aged.old

    out, _ = prune("--dry-run")
    assert f"kept {part(16)}" in out and f"legal hold #{hold.pk}" in out and "Case 2026-14" in out
    assert f"would drop {part(15)}" in out
    out, _ = prune()
    assert f"kept {part(16)}" in out and f"dropped {part(15)}" in out
    assert aged.in_month(16).count() == 4

    run("course_audit_hold", "release", str(hold.pk), "--by", registrar.get_username())
    hold.refresh_from_db()
    assert hold.released_at is not None and hold.released_by == registrar
    _, out, _ = run("course_audit_hold", "list")
    assert "no active legal holds" in out
    _, out, _ = run("course_audit_hold", "list", "--all")
    assert f"#{hold.pk}" in out and "released" in out
    out, _ = prune()
    assert f"dropped {part(16)}" in out


def test_a_hold_on_an_account_covers_the_courses_below_it(aged: Aged, root_account: Any) -> None:
    services.legal_hold_place(account=root_account, reason="Accreditation review")
    out, _ = prune()
    assert f"kept {part(16)}" in out and f"kept {part(15)}" in out
    assert "Accreditation review" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["place", "--course", "999999", "--reason", "x"], "no course 999999"),
        (["place", "--account", "999999", "--reason", "x"], "no account 999999"),
        (["release", "999999"], "no legal hold #999999"),
    ],
)
def test_the_hold_command_names_what_is_wrong(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("course_audit_hold", *args)


def test_a_blank_reason_or_a_second_release_is_refused(make_course: Any) -> None:
    course = make_course()
    with pytest.raises(CommandError, match="needs a reason"):
        run("course_audit_hold", "place", "--course", str(course.pk), "--reason", "  ")
    hold = services.legal_hold_place(course=course, reason="Appeal")
    services.legal_hold_release(hold=hold)
    with pytest.raises(CommandError, match="already released"):
        run("course_audit_hold", "release", str(hold.pk))


def test_the_admin_places_a_hold_as_its_user_and_releases_it(
    client: Any, make_user: Any, make_course: Any
) -> None:
    course = make_course()
    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:course_audit_legalhold_add"),
        {"course": course.pk, "account": "", "reason": "Records request 77"},
    )
    assert response.status_code == 302
    hold = LegalHold.objects.get()
    assert hold.created_by == admin_user and hold.reason == "Records request 77"
    response = client.post(
        reverse("admin:course_audit_legalhold_changelist"),
        {"action": "release", "_selected_action": [hold.pk]},
    )
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.released_by == admin_user
    # Neither a course and an account nor neither: the form says so.
    response = client.post(
        reverse("admin:course_audit_legalhold_add"), {"course": "", "account": "", "reason": "x"}
    )
    assert response.status_code == 200
    assert "A legal hold is on a course or on an account." in response.content.decode()
    assert Course.objects.filter(pk=course.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_writers_a_sis_import_and_a_prune_together_verify_clean(
    keys: Path, department: Any, tmp_path: Path
) -> None:
    """An untouched log stays clean while writers commit (outside the app, by trigger) and
    a SIS import runs, through a prune and the checkpoints around it."""
    if connection.vendor != "postgresql":
        pytest.skip("partitions need PostgreSQL")
    from course_audit import sis
    from tests.test_integrity import _insert_course, _other_connection

    aged = Aged(department)
    pruned = aged.in_month(16).count() + aged.in_month(15).count()

    def write(worker: int) -> None:
        with _other_connection() as other:
            for i in range(10):
                _insert_course(other, department.pk, f"W{worker}-{i}")
                other.commit()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for writer in writers:
        writer.start()
    csv = tmp_path / "courses.csv"
    csv.write_text(
        "course_id,short_name,long_name,account_id,status,start_date,end_date\n"
        "SIS-1,S1,Imported one,BIO,active,,\nSIS-2,S2,Imported two,BIO,active,,\n"
    )
    sis.import_courses_csv(file=csv, root_account=department.root_account)
    outcome = archives.prune(keep_months=14)
    assert [p.name for p, _ in outcome.dropped] == [part(16), part(15)]
    while any(writer.is_alive() for writer in writers):
        integrity.seal()
    for writer in writers:
        writer.join()
    integrity.seal()
    report = integrity.verify(digests=True)
    assert report.intact, report.problems
    assert report.pruned == pruned
    assert report.events == CourseEvent.objects.count() >= 20 + 2
