"""Tamper evidence (``course_audit.integrity``): checkpoints, verification, digests, keys,
proofs and erasure.

Each tampering is done as an attacker would: on PostgreSQL as a superuser with the
triggers bypassed (``session_replication_role = replica``), on SQLite with plain SQL. Each
must be reported by ``course_audit_verify``, naming the event or checkpoint, with a non-zero
exit; an untouched log verifies clean.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
import uuid
from io import StringIO
from pathlib import Path
from typing import Any
from unittest.mock import patch

import psycopg
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from course_audit import integrity, merkle, partitions, services, sis
from course_audit.context import audit_context
from course_audit.models import Checkpoint, CourseEvent, PageView, SisBatch

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL: triggers, partitions, locks"
)


@pytest.fixture
def history(keys: Path, department: Any, make_user: Any, tmp_path: Path) -> list[Any]:
    """Courses made and changed by a user and by a SIS import."""
    teacher = make_user("teacher")
    courses = [
        services.course_create(account=department, name=f"Course {i}", user=teacher)
        for i in range(3)
    ]
    services.course_update(course=courses[0], name="Renamed", user=teacher)
    services.course_publish(course=courses[1], user=teacher)
    csv = tmp_path / "courses.csv"
    csv.write_text(
        "course_id,short_name,long_name,account_id,status,start_date,end_date\n"
        "SIS-1,S1,Imported one,BIO,active,,\nSIS-2,S2,Imported two,BIO,active,,\n"
    )
    sis.import_courses_csv(file=csv, root_account=department.root_account, user=teacher)
    return courses


def verify(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("course_audit_verify", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def checkpoint() -> str:
    out = StringIO()
    call_command("course_audit_checkpoint", stdout=out)
    return out.getvalue()


def tamper(sql: str, params: list[Any] | None = None) -> None:
    """Run SQL past the triggers, as a superuser can."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = origin")


def some_event(position: int = 2) -> CourseEvent:
    return CourseEvent.objects.order_by("id")[position]


# The clean path


def test_a_checkpoint_seals_every_event_and_verifies_clean(history: list[Any]) -> None:
    output = checkpoint()
    [sealed] = Checkpoint.objects.all()
    assert "checkpoint #1" in output
    assert sealed.count == CourseEvent.objects.count() > 5
    assert sealed.first_id == CourseEvent.objects.order_by("id").first().pk
    assert sealed.last_id == CourseEvent.objects.order_by("id").last().pk
    assert (sealed.after_id, sealed.previous) == (0, "")
    status, report = verify("--digests")
    assert status == 0, report
    assert f"intact: {sealed.count} events and 1 checkpoints checked" in report
    assert checkpoint() == "nothing new to seal\n"


def test_later_events_go_into_a_chained_checkpoint(history: list[Any]) -> None:
    checkpoint()
    services.course_conclude(course=history[1])
    checkpoint()
    first, second = Checkpoint.objects.order_by("sequence")
    assert (second.sequence, second.after_id, second.previous) == (2, first.last_id, first.hash)
    assert second.count == 1
    assert verify("--digests")[0] == 0


def test_a_big_backlog_is_split_into_checkpoints_of_at_most_the_limit(
    history: list[Any], settings: Any
) -> None:
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 3
    total = CourseEvent.objects.count()
    checkpoint()
    counts = list(Checkpoint.objects.values_list("count", flat=True))
    assert sum(counts) == total and max(counts) == 3 and len(counts) == -(-total // 3)
    assert verify("--digests")[0] == 0


def test_nothing_is_sealed_without_a_key(history: list[Any], settings: Any) -> None:
    settings.COURSE_AUDIT_SIGNING_KEY = None
    with pytest.raises(Exception, match="COURSE_AUDIT_SIGNING_KEY is not set"):
        checkpoint()
    assert not Checkpoint.objects.exists()


def test_the_leaf_holds_every_sealed_column_and_no_name(history: list[Any]) -> None:
    event = CourseEvent.objects.exclude(user_name="").first()
    row = CourseEvent.objects.filter(pk=event.pk).values_list(*integrity.SEALED_COLUMNS).get()
    fields = integrity.leaf_fields(row)
    assert set(fields) == set(merkle.LEAF_FIELDS)
    assert event.user_name not in json.dumps(fields)
    assert fields["user_name_digest"] == merkle.user_name_digest(str(event.uuid), event.user_name)
    assert fields["created_at"].endswith("Z") and len(fields["created_at"]) == 27


# Strings a leaf must escape as Python's json does: quotes, backslashes, every control
# character, and text beyond ASCII (the event type and source are short columns).
AWKWARD = ('"\\\t\n', "".join(map(chr, range(1, 32))) + "\x7f", "é中🎓\u2028\ufeff", "")


def test_sealed_entries_are_the_leaves_leaf_fields_makes(history: list[Any]) -> None:
    """What sealing and verification read (on PostgreSQL the database writes part of each
    leaf) is, byte for byte, ``merkle.leaf_bytes(leaf_fields(row))``, on awkward values."""
    first = CourseEvent.objects.order_by("id").first()
    batch = SisBatch.objects.create(root_account=first.account.root_account, filename="x.csv")
    view = PageView.objects.create(
        request_id=uuid.uuid4(), url="/", http_method="GET", created_at=first.created_at
    )
    values = [
        {"event_type": text[:16], "event_source": text[:8], "db_role": text, "db_application": text}
        for text in AWKWARD
    ]
    values += [
        {"event_data": data}
        for data in (
            {},
            [],
            {"b": [1.0, 1.5, 1e-07, 1e300, -0.0, 0.1 + 0.2, 10**30, -5], "a": None, "é": 1},
            {"Z": {"z": True, "ä": False, "": ""}, "s": AWKWARD[0] + AWKWARD[1] + AWKWARD[2]},
            "text",
            12.5,
        )
    ]
    values += [{"user_name": text, "user_name_digest": None} for text in AWKWARD]
    values += [  # erased names: the stored digest is sealed, whatever it holds
        {"user_name": "", "user_name_digest": "a" * 64},
        {"user_name": "", "user_name_digest": AWKWARD[0]},
        {"user_name": "", "user_name_digest": ""},
    ]
    values += [
        {"db_client_addr": address}
        for address in ("127.0.0.1", "::1", "::ffff:1.2.3.4", "2001:db8::1")
    ]
    values += [
        {"created_at": moment}
        for moment in (
            dt.datetime(2025, 1, 31, 12, 0, tzinfo=dt.UTC),
            dt.datetime(2025, 3, 30, 2, 30, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=-9))),
            dt.datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        )
    ]
    values += [
        {"related_course": history[1], "sis_batch": batch, "page_view": view, "user": None},
        {"user_id": 2**31 - 1, "account": history[2].account, "course": history[2]},
    ]
    for fields in values:
        CourseEvent.objects.create(
            **{
                "course": first.course,
                "account": first.account,
                "event_type": "updated",
                "event_source": "api",
                "user_name": "Ada",
                **fields,
            }
        )
    # Addresses with a netmask, as only SQL can write them.
    for address in ("10.1.2.3/24", "2001:db8::1/64"):
        tamper(
            f"UPDATE {integrity.EVENT_TABLE} SET db_client_addr = %s WHERE id = %s",
            [address, CourseEvent.objects.order_by("-id").values_list("id", flat=True)[0]],
        )
        CourseEvent.objects.create(
            course=first.course, account=first.account, event_type="updated", event_source="api"
        )
    expected = b"".join(
        integrity.pack_leaf(
            row[0], str(row[1]), merkle.leaf_hash(merkle.leaf_bytes(integrity.leaf_fields(row)))
        )
        for row in CourseEvent.objects.order_by("id").values_list(*integrity.SEALED_COLUMNS)
    )
    last = CourseEvent.objects.order_by("id").last().pk
    entries, hashes = integrity.sealed_entries("default", after=integrity.MIN_ID, through=last)
    assert entries == expected
    assert hashes == [entries[at + 24 : at + 56] for at in range(0, len(entries), 56)]
    assert len(hashes) > len(values)
    # In chunks, and cut at a limit.
    with patch.object(integrity, "_LEAF_CHUNK", 7):
        chunked, _ = integrity.sealed_entries("default", after=first.pk, through=last, limit=30)
    assert chunked == expected[56 : 56 * 31]
    checkpoint()
    assert verify()[0] == 0


# Tampering with events


def test_a_changed_event_data_is_reported_naming_the_event(history: list[Any]) -> None:
    checkpoint()
    event = some_event()
    tamper(
        "UPDATE course_audit_courseevent SET event_data = %s WHERE id = %s",
        ['{"name": ["x", "y"]}', event.pk],
    )
    status, report = verify()
    assert status == 1
    assert f"modified: event {event.uuid} (id {event.pk})" in report
    assert "1 event modified" in report.splitlines()[-1]


def test_a_changed_created_at_is_reported(history: list[Any]) -> None:
    checkpoint()
    event = some_event()
    tamper(
        "UPDATE course_audit_courseevent SET created_at = created_at - interval '1 second'"
        " WHERE id = %s"
        if connection.vendor == "postgresql"
        else "UPDATE course_audit_courseevent SET created_at = '2020-01-01 00:00:00' WHERE id = %s",
        [event.pk],
    )
    status, report = verify()
    assert status == 1 and f"event {event.uuid} (id {event.pk})" in report


def test_a_deleted_event_is_reported_naming_it(history: list[Any]) -> None:
    checkpoint()
    event = some_event()
    tamper("DELETE FROM course_audit_courseevent WHERE id = %s", [event.pk])
    status, report = verify()
    assert status == 1
    assert f"deleted: event {event.uuid} (id {event.pk}) sealed in checkpoint #1" in report


def _forge(template: CourseEvent, event_id: int | None, created_at: dt.datetime) -> str:
    forged = CourseEvent(
        course_id=template.course_id,
        account_id=template.account_id,
        event_type="deleted",
        event_source="manual",
        created_at=created_at,
    )
    columns = "uuid, created_at, course_id, account_id, event_type, event_source, event_data,"
    columns += " user_name, db_role, db_application" + (", id" if event_id else "")
    values = [str(forged.uuid), created_at, forged.course_id, forged.account_id, "deleted"]
    values += ["manual", "{}", "", "", ""] + ([event_id] if event_id else [])
    tamper(
        f"INSERT INTO course_audit_courseevent ({columns})"
        f" VALUES ({', '.join(['%s'] * len(values))})",
        values,
    )
    return str(forged.uuid)


def test_an_event_forged_into_a_sealed_range_is_reported(history: list[Any]) -> None:
    checkpoint()
    first, second = CourseEvent.objects.order_by("id")[:2]
    assert second.pk - first.pk == 1  # no free id between: forge one below the first
    forged = _forge(first, first.pk - 1 if first.pk > 1 else -5, first.created_at)
    status, report = verify()
    assert status == 1 and f"inserted: event {forged}" in report


def test_a_backdated_forged_event_is_reported_before_and_after_sealing(
    history: list[Any],
) -> None:
    checkpoint()
    old = timezone.now() - dt.timedelta(days=3)
    forged = _forge(some_event(), None, old)
    status, report = verify()
    assert status == 1 and f"unsealed: event {forged}" in report
    checkpoint()
    status, report = verify()
    assert status == 1 and f"backdated: event {forged}" in report


def test_a_backfill_after_sealing_began_is_reported_as_such_not_as_backdated(
    history: list[Any], department: Any
) -> None:
    checkpoint()
    long_ago = timezone.now() - dt.timedelta(days=3)
    with audit_context(occurred_at=long_ago):
        imported = services.course_create(account=department, name="Imported from the old LMS")
    backfilled = list(CourseEvent.objects.filter(course=imported).order_by("id"))
    assert backfilled and all(event.created_at == long_ago for event in backfilled)
    # When it was really written is kept beside the date the backfill gave it.
    assert all(timezone.now() - event.recorded_at < dt.timedelta(minutes=1) for event in backfilled)
    status, report = verify()
    assert status == 0, report  # waiting to be sealed, recorded just now: not "unsealed"
    checkpoint()
    status, report = verify()
    assert status == 0, report
    for event in backfilled:
        assert f"backfill (not a problem): event {event.uuid} (id {event.pk}) sealed in" in report
    assert f"{len(backfilled)} backfilled; 0 problems" in report.splitlines()[-1]
    # The leaf seals it: moved later (to pass for an ordinary event) or earlier, it shows.
    tamper(
        "UPDATE course_audit_courseevent SET recorded_at = %s WHERE id = %s",
        [long_ago, backfilled[0].pk],
    )
    status, report = verify()
    assert status == 1 and f"modified: event {backfilled[0].uuid}" in report


def test_an_event_recorded_now_has_no_backfill_time(history: list[Any]) -> None:
    assert not CourseEvent.objects.filter(recorded_at__isnull=False).exists()
    fields = integrity.leaf_fields(
        CourseEvent.objects.values_list(*integrity.SEALED_COLUMNS).first()
    )
    assert "recorded_at" not in fields  # an ordinary event seals as it always did


def test_a_forged_event_claiming_an_old_backfill_is_backdated(history: list[Any]) -> None:
    checkpoint()
    old = timezone.now() - dt.timedelta(days=3)
    forged = _forge(some_event(), None, old)
    tamper("UPDATE course_audit_courseevent SET recorded_at = %s WHERE uuid = %s", [old, forged])
    checkpoint()
    status, report = verify()
    assert status == 1 and f"backdated: event {forged}" in report


@postgres_only
def test_a_dropped_month_partition_is_reported(keys: Path, department: Any) -> None:
    month = partitions.month_start(timezone.now() - dt.timedelta(days=70))
    partitions.ensure_partitions(start=month)
    with audit_context(occurred_at=month + dt.timedelta(days=2)):
        old = [services.course_create(account=department, name=f"Old {i}") for i in range(3)]
    services.course_create(account=department, name="Now")
    checkpoint()
    dropped = list(CourseEvent.objects.filter(course__in=old).order_by("id"))
    name = partitions.month_partition_name(month)
    tamper(f"ALTER TABLE course_audit_courseevent DETACH PARTITION {name}; DROP TABLE {name}")
    status, report = verify()
    assert status == 1
    assert (
        f"{len(dropped)} events sealed in checkpoint #1 are missing, ids {dropped[0].pk}"
        f" ({dropped[0].uuid}) to {dropped[-1].pk} ({dropped[-1].uuid})" in report
    )
    assert f"{len(dropped)} event deleted" in report.splitlines()[-1]


# Tampering with checkpoints and digests


def test_a_deleted_checkpoint_row_is_reported(history: list[Any]) -> None:
    checkpoint()
    services.course_conclude(course=history[1])
    checkpoint()
    services.course_conclude(course=history[2])
    checkpoint()
    tamper("DELETE FROM course_audit_checkpoint WHERE sequence = 2")
    status, report = verify()
    assert status == 1 and "checkpoint #2 is missing" in report
    # The newest one: only the digest files tell.
    tamper("DELETE FROM course_audit_checkpoint WHERE sequence = 3")
    status, report = verify("--digests")
    assert status == 1
    assert "names checkpoint #3, which the database does not hold" in report


def test_an_edited_checkpoint_row_is_reported(history: list[Any]) -> None:
    checkpoint()
    tamper("UPDATE course_audit_checkpoint SET count = count - 1, root = %s", ["0" * 64])
    status, report = verify()
    assert status == 1
    assert "checkpoint_altered: checkpoint #1: its hash does not match" in report


def test_a_replaced_digest_file_is_reported(history: list[Any], keys: Path) -> None:
    checkpoint()
    [sealed] = Checkpoint.objects.all()
    path = keys / "store" / integrity.digest_name(sealed)
    document = json.loads(path.read_text())
    document["header"]["count"] += 1
    path.write_text(json.dumps(document))
    status, report = verify("--digests")
    assert status == 1
    assert f"digest_mismatch: the digest file {integrity.digest_name(sealed)}" in report
    path.unlink()
    status, report = verify("--digests")
    assert status == 1 and "digest_missing: checkpoint #1 has no digest file" in report


def test_a_log_rewritten_and_resigned_with_another_key_is_reported(history: list[Any]) -> None:
    checkpoint()
    event = some_event()
    tamper(
        "UPDATE course_audit_courseevent SET event_data = %s WHERE id = %s",
        ['{"name": ["x", "y"]}', event.pk],
    )
    # The attacker reseals everything with a key of their own, over the rewritten rows.
    tamper("DELETE FROM course_audit_checkpoint")
    attacker, _, attacker_id = integrity.generate_key_pair()
    from cryptography.hazmat.primitives import serialization

    integrity.seal(key=serialization.load_pem_private_key(attacker, password=None))  # type: ignore[arg-type]
    status, report = verify()
    assert status == 1
    assert f"checkpoint #1 is signed by key {attacker_id}, which is not trusted" in report


def test_a_rotated_key_verifies_when_the_old_one_is_trusted(
    history: list[Any], keys: Path, settings: Any
) -> None:
    checkpoint()
    old_public = (keys / "signing.pub.pem").read_text()
    call_command("course_audit_keygen", str(keys / "new.pem"), stdout=StringIO())
    settings.COURSE_AUDIT_SIGNING_KEY = str(keys / "new.pem")
    services.course_conclude(course=history[1])
    checkpoint()
    assert len(set(Checkpoint.objects.values_list("key_id", flat=True))) == 2
    assert verify()[0] == 1  # the first key is no longer trusted
    settings.COURSE_AUDIT_TRUSTED_KEYS = [str(keys / "signing.pub.pem")]
    assert verify("--digests")[0] == 0
    settings.COURSE_AUDIT_TRUSTED_KEYS = [merkle.public_key_b64(merkle.load_public_key(old_public))]
    assert verify()[0] == 0


@postgres_only
def test_checkpoints_are_append_only(history: list[Any]) -> None:
    checkpoint()
    for statement in (
        "UPDATE course_audit_checkpoint SET count = 0",
        "DELETE FROM course_audit_checkpoint",
    ):
        with (
            pytest.raises(DatabaseError, match="checkpoints are append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)


# Proofs


def proof_url(event: CourseEvent) -> str:
    return reverse("course_audit_api:event-proof", kwargs={"event_uuid": str(event.uuid)})


def test_an_events_proof_from_the_api_verifies_standalone_and_fails_once_altered(
    history: list[Any], keys: Path, caller: Any, department: Any, admin_role: Any
) -> None:
    checkpoint()
    event = some_event(4)
    api = caller("auditor", (department, admin_role))
    response = api.get(proof_url(event))
    assert response.status_code == 200, response.content
    proof = response.json()
    assert proof["event"]["uuid"] == str(event.uuid)
    assert proof["checkpoint"]["header"]["sequence"] == 1
    proof_path = keys / "proof.json"
    proof_path.write_text(json.dumps(proof))
    command = [sys.executable, "-m", "course_audit.proof", str(proof_path)]
    ok = subprocess.run(
        [*command, str(keys / "signing.pub.pem")], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(
        f"OK: event {event.uuid} (id {event.pk}) is sealed in checkpoint #1"
    )
    call_command("course_audit_keygen", str(keys / "other.pem"), stdout=StringIO())
    other = subprocess.run(
        [*command, str(keys / "other.pub.pem")], capture_output=True, text=True, check=False
    )
    assert other.returncode == 1 and "not the one given" in other.stdout
    tamper("UPDATE course_audit_courseevent SET event_type = 'deleted' WHERE id = %s", [event.pk])
    proof_path.write_text(json.dumps(api.get(proof_url(event)).json()))
    altered = subprocess.run(
        [*command, str(keys / "signing.pub.pem")], capture_output=True, text=True, check=False
    )
    assert altered.returncode == 1
    assert f"FAILED: event {event.uuid} is not what checkpoint #1 sealed" in altered.stdout


def test_the_standalone_verifier_imports_nothing_of_django() -> None:
    probe = "import sys, course_audit.proof; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "django" not in loaded and "rest_framework" not in loaded


def test_an_unsealed_event_has_no_proof_and_others_get_none(
    history: list[Any], caller: Any, department: Any, admin_role: Any, other_root: Any
) -> None:
    event = some_event()
    api = caller("auditor", (department, admin_role))
    response = api.get(proof_url(event))
    assert response.status_code == 409
    message = "The event is not sealed in a checkpoint yet; ask again after the next one."
    assert response.json() == {"errors": [{"message": message}]}
    checkpoint()
    assert api.get(proof_url(event)).status_code == 200
    assert caller("outsider", (other_root, admin_role)).get(proof_url(event)).status_code == 404
    assert api.get("/api/v1/audit/course/events/not-a-uuid/proof").status_code == 404


# Privacy


def test_erasing_a_person_blanks_the_names_and_verifies_clean(
    history: list[Any], make_user: Any
) -> None:
    checkpoint()
    teacher_id, name = CourseEvent.objects.exclude(user_name="").values_list(
        "user_id", "user_name"
    )[0]
    named = CourseEvent.objects.filter(user_id=teacher_id).count()
    out = StringIO()
    call_command("course_audit_erase_person", str(teacher_id), stdout=out)
    assert f"erased the name from {named} events" in out.getvalue()
    assert not CourseEvent.objects.filter(user_id=teacher_id).exclude(user_name="").exists()
    assert not CourseEvent.objects.filter(user_id=teacher_id, user_name_digest=None).exists()
    assert verify("--digests")[0] == 0
    proof = integrity.event_proof(CourseEvent.objects.filter(user_id=teacher_id).first())
    assert name not in json.dumps(proof)


@postgres_only
def test_the_trigger_allows_only_the_erasure_shape(history: list[Any]) -> None:
    event = CourseEvent.objects.exclude(user_name="").first()
    digest = merkle.user_name_digest(str(event.uuid), event.user_name)
    refused = [
        ("user_name = ''", []),  # no digest
        ("user_name = 'Someone else', user_name_digest = %s", [digest]),
        ("user_name = '', user_name_digest = %s, event_type = 'deleted'", [digest]),
        ("user_name = '', user_name_digest = 'not a digest'", []),
    ]
    for assignment, params in refused:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                f"UPDATE course_audit_courseevent SET {assignment} WHERE id = %s",
                [*params, event.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE course_audit_courseevent SET user_name = '', user_name_digest = %s"
            " WHERE id = %s",
            [digest, event.pk],
        )
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):  # once only
        cursor.execute(
            "UPDATE course_audit_courseevent SET user_name_digest = %s WHERE id = %s",
            ["0" * 64, event.pk],
        )


def test_a_wrong_erasure_digest_breaks_verification(history: list[Any]) -> None:
    checkpoint()
    event = CourseEvent.objects.exclude(user_name="").first()
    tamper(
        "UPDATE course_audit_courseevent SET user_name = '', user_name_digest = %s WHERE id = %s",
        ["0" * 64, event.pk],
    )
    status, report = verify()
    assert status == 1 and f"modified: event {event.uuid}" in report


# Concurrency (PostgreSQL): a checkpoint never seals a range an open transaction can add to


def _other_connection() -> psycopg.Connection[Any]:
    params = connection.get_connection_params()
    return psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=connection.settings_dict["NAME"],
    )


def _insert_course(other: psycopg.Connection[Any], account_id: int, name: str) -> None:
    other.execute(
        "INSERT INTO course_audit_course (account_id, root_account_id, name, course_code,"
        " uuid, is_public, public_description, workflow_state, created_at, updated_at)"
        " VALUES (%s, %s, %s, '', gen_random_uuid(), false, '', 'unpublished', now(), now())",
        [account_id, account_id, name],
    )


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_waits_for_an_open_writer_and_a_late_event_lands_in_the_next(
    keys: Path, department: Any, monkeypatch: Any
) -> None:
    services.course_create(account=department, name="Before")
    with _other_connection() as slow, _other_connection() as quick:
        _insert_course(slow, department.pk, "Slow")  # open: its event has the lower id
        _insert_course(quick, department.pk, "Quick")
        quick.commit()
        # While the slow writer is open, no checkpoint can be made past it.
        monkeypatch.setattr(integrity, "LOCK_TIMEOUT", "300ms")
        with pytest.raises(integrity.SealingError, match="lock timeout"):
            integrity.seal()
        assert not Checkpoint.objects.exists()
        # One that waits gets every event once the writer commits.
        monkeypatch.setattr(integrity, "LOCK_TIMEOUT", "10s")
        made: list[Checkpoint] = []

        def seal_in_thread() -> None:
            try:
                made.extend(integrity.seal())
            finally:
                connections.close_all()

        sealer = threading.Thread(target=seal_in_thread)
        sealer.start()
        time.sleep(0.5)
        assert sealer.is_alive() and not made
        slow.commit()
        sealer.join(10)
    [first] = made
    assert first.count == CourseEvent.objects.count() == 3
    # A writer that begins after the checkpoint lands in the next one.
    with _other_connection() as late:
        _insert_course(late, department.pk, "Late")
        late.commit()
    [second] = integrity.seal()
    assert (second.after_id, second.count) == (first.last_id, 1)
    assert integrity.verify(digests=True).intact


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_checkpoints_verify_clean(keys: Path, department: Any) -> None:
    def write(worker: int) -> None:
        with _other_connection() as other:
            for i in range(15):
                _insert_course(other, department.pk, f"W{worker}-{i}")
                other.commit()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        integrity.seal()
    integrity.seal()
    total = Checkpoint.objects.aggregate(total=Sum("count"))["total"]
    assert total == CourseEvent.objects.count() == 45
    report = integrity.verify(digests=True)
    assert report.intact, report.problems


def test_a_backlog_sealed_in_several_checkpoints_by_one_run_is_not_backdated(
    keys: Path, department: Any, settings: Any
) -> None:
    """One run seals a backlog older than itself into checkpoints of the limit's size, all
    made at one time: the later ones' events predate the checkpoint just before them, yet
    were committed before that run began. Backdating is judged against the run before."""
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 2
    with audit_context(occurred_at=timezone.now() - dt.timedelta(days=200)):
        courses = [services.course_create(account=department, name=f"Old {i}") for i in range(5)]
    checkpoint()
    assert Checkpoint.objects.count() == 3
    assert verify()[0] == 0
    first_run = Checkpoint.objects.order_by("sequence").last()

    services.course_conclude(course=courses[0])
    checkpoint()
    assert verify("--digests")[0] == 0
    forged = _forge(some_event(), None, timezone.now() - dt.timedelta(days=3))
    checkpoint()
    status, report = verify()
    assert status == 1
    assert f"backdated: event {forged}" in report
    assert f"before checkpoint #{first_run.sequence + 1}" in report


# Reading ahead while sealing (``integrity._LeafReader``)


def _more_events(history: list[Any], count: int) -> list[int]:
    """``count`` events more, some that only ``leaf_fields`` encodes (a time before the year
    1000) and some with an erased name; every event's id, in order."""
    first = CourseEvent.objects.order_by("id").first()
    for i in range(count):
        CourseEvent.objects.create(
            course=first.course,
            account=first.account,
            event_type="updated",
            event_source="api",
            event_data={"n": i, "s": AWKWARD[i % len(AWKWARD)]},
            user_name="" if i % 5 == 0 else f"Ada {i}",
            user_name_digest="b" * 64 if i % 5 == 0 else None,
            **({"created_at": dt.datetime(999, 1, 1, tzinfo=dt.UTC)} if i % 7 == 3 else {}),
        )
    return list(CourseEvent.objects.order_by("id").values_list("id", flat=True))


def _joined(keys: list[bytes], hashes: list[bytes]) -> bytes:
    return b"".join(key + hashed for key, hashed in zip(keys, hashes, strict=True))


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_read_ahead_gives_the_serial_entries_a_checkpoint_at_a_time(
    history: list[Any], monkeypatch: Any
) -> None:
    """Chunk by chunk on its own connection, cut where each checkpoint ends (a limit that
    is no multiple of the chunk), the read-ahead's entries are the serial path's."""
    ids = _more_events(history, 30)
    monkeypatch.setattr(integrity, "_LEAF_CHUNK", 3)
    limit, through = 8, ids[-2]
    after, seen = 0, 0
    with integrity._LeafReader.open("default", after=0, through=through, limit=limit) as reader:
        assert reader is not None
        while not reader.exhausted:
            keys, hashes = reader.entries(after=after, limit=limit)
            serial, serial_hashes = integrity.sealed_entries(
                "default", after=after, through=through, limit=limit
            )
            assert (_joined(keys, hashes), hashes) == (serial, serial_hashes)
            assert len(keys) == limit or reader.exhausted
            seen += len(keys)
            if keys:
                after = integrity._entry_id(serial, len(keys) - 1)
        # Asked again past the end: nothing more.
        assert reader.entries(after=after, limit=limit) == ([], [])
    assert seen == len(ids) - 1 and after == through


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_read_ahead_refuses_a_range_it_is_not_at(history: list[Any], monkeypatch: Any) -> None:
    """Another run's checkpoint moves the start of the next range: the read-ahead, which is
    elsewhere, refuses it rather than seal entries from another range."""
    ids = _more_events(history, 5)
    monkeypatch.setattr(integrity, "_LEAF_CHUNK", 3)
    with integrity._LeafReader.open("default", after=0, through=ids[-1], limit=4) as reader:
        assert reader is not None
        reader.entries(after=0, limit=4)
        with pytest.raises(integrity.SealingError, match="at the same time"):
            reader.entries(after=ids[5], limit=4)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_the_read_ahead_is_djangos_and_seals_nothing(
    history: list[Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr(integrity, "_LEAF_CHUNK", 2)
    monkeypatch.setattr(integrity, "_leaf_sql", lambda connection: "SELECT broken %s %s %s")
    with pytest.raises(DatabaseError, match="broken"):
        integrity.seal()
    assert not Checkpoint.objects.exists()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_range_of_one_chunk_is_read_without_a_second_connection(history: list[Any]) -> None:
    first, last = CourseEvent.objects.order_by("id")[0].pk, CourseEvent.objects.latest("id").pk
    with integrity._LeafReader.open("default", after=first - 1, through=last, limit=5) as reader:
        assert reader is None


def test_inside_a_transaction_the_serial_path_reads(history: list[Any]) -> None:
    """Another connection would not see the transaction's own events."""
    assert connection.in_atomic_block
    with integrity._LeafReader.open("default", after=0, through=10**6, limit=5) as reader:
        assert reader is None
    assert [made.count for made in integrity.seal()] == [CourseEvent.objects.count()]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_checkpoints_sealed_with_the_read_ahead_store_their_lists_sent_as_binary(
    history: list[Any], settings: Any, monkeypatch: Any
) -> None:
    """Several checkpoints in one run, read ahead; each one's sealed list goes to the
    server as a binary parameter (not as a literal in the SQL) and reads back as sealed."""
    ids = _more_events(history, 20)
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 6
    monkeypatch.setattr(integrity, "_LEAF_CHUNK", 4)
    reads = []
    entries = integrity._LeafReader.entries

    def counted(reader: Any, **kwargs: Any) -> Any:
        reads.append(kwargs["after"])
        return entries(reader, **kwargs)

    monkeypatch.setattr(integrity._LeafReader, "entries", counted)
    sent = []
    execute = psycopg.Cursor.execute

    def spied(cursor: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if str(query).startswith(f'INSERT INTO "{Checkpoint._meta.db_table}"'):
            sent.append((type(cursor), query, params))
        return execute(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", spied)
    made = integrity.seal()
    assert [checkpoint.count for checkpoint in made] == [6, 6, 6, 6, len(ids) - 24]
    assert reads == [0] + [checkpoint.last_id for checkpoint in made[:-1]]
    assert len(sent) == len(made)
    for cursor_class, query, params in sent:
        assert not issubclass(cursor_class, psycopg.ClientCursor)
        assert "\\x" not in query and any(isinstance(p, psycopg.Binary) for p in params)
    for checkpoint in made:
        stored = Checkpoint.objects.get(pk=checkpoint.pk)
        serial, _ = integrity.sealed_entries(
            "default", after=stored.after_id, through=stored.last_id
        )
        assert bytes(stored.leaves) == checkpoint.leaves == serial
        assert stored.hash == checkpoint.hash
    assert integrity.verify(digests=True).intact


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_without_a_second_connection_the_serial_path_seals(
    history: list[Any], settings: Any, monkeypatch: Any
) -> None:
    _more_events(history, 10)
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 4
    monkeypatch.setattr(integrity, "_LEAF_CHUNK", 3)
    params = connection.get_connection_params()
    monkeypatch.setattr(connection, "get_connection_params", lambda: {**params, "port": 1})
    with integrity._LeafReader.open("default", after=0, through=10**6, limit=4) as reader:
        assert reader is None
    made = integrity.seal()
    assert sum(checkpoint.count for checkpoint in made) == CourseEvent.objects.count()
    assert integrity.verify(digests=True).intact
