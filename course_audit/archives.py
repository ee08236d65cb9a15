"""Retention that keeps history provable: each month is written to a sealed archive before
its partition is dropped, a signed prune note says what went, legal holds keep months from
going, and an archived month can be loaded back. See docs/integrity.md, "Keeping it for
years".

An archive is two files in the digest storage (``COURSE_AUDIT_DIGEST_STORAGE``), beside the
checkpoints' digests:

- ``archives/<month>/<stamp>.jsonl.gz``: the month's events in id order, one JSON object
  per line with every column of the events table;
- ``archives/<month>/<stamp>.manifest.json``: the *manifest* (the partition, its bounds,
  the row count, the SHA-256 and size of the first file, the Merkle root of the archived
  events' leaves, the checkpoints that sealed them and the *runs*: the id ranges in which
  every event of the table belonged to the month), signed with the signing key, and its
  hash. The same document is the ``PruneNote`` row.

Verification accepts a sealed event missing from the table exactly when its id lies in a
run of a prune note signed by a trusted key. Before a month is dropped, its archive is read
back from the storage and checked against the checkpoints (every archived event as sealed,
no sealed event of a run left out): nothing is dropped whose archive did not verify.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import ipaddress
import itertools
import json
import os
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.files.base import File
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from course_audit import integrity, merkle, partitions
from course_audit.models import Account, Checkpoint, Course, CourseEvent, LegalHold, PruneNote

ARCHIVE_DIR = "archives"
# Events read per query when archiving or restoring.
CHUNK = 5000
# Gaps in a month's ids checked per query for events of other months between them.
GAP_CHUNK = 10_000
# Sealed lists kept decoded while an archive is checked (each up to
# ``CHECKPOINT_MAX_EVENTS`` entries): a month's events mostly come in id order.
_CACHED_CHECKPOINTS = 4


class ArchiveError(Exception):
    """An archive could not be made, verified or restored; the month stays as it was."""


# The events table's columns, as an archive line names them.


def event_columns() -> list[tuple[str, str]]:
    """Each column of the events table and the name an archive line gives it (the
    field's ``attname``, as ``integrity.SEALED_COLUMNS`` names them)."""
    return [(field.column, field.attname) for field in CourseEvent._meta.concrete_fields]


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return merkle.utc_timestamp(value)
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value.ip)
    raise TypeError(f"cannot archive a {type(value).__name__}")


def archive_line(row: dict[str, Any]) -> bytes:
    return merkle.canonical_json(json.loads(json.dumps(row, default=_json_default))) + b"\n"


def sealed_row(row: dict[str, Any]) -> tuple[Any, ...]:
    """An archived (or read) event as ``integrity.SEALED_COLUMNS`` reads it."""
    times = {
        column: dt.datetime.fromisoformat(row[column])
        if isinstance(row.get(column), str)
        else row.get(column)
        for column in ("created_at", "recorded_at")
    }
    return tuple(
        times[column] if column in times else row[column] for column in integrity.SEALED_COLUMNS
    )


# The checkpoints, as an archive is checked against them.


@dataclasses.dataclass
class Finding:
    kind: str
    message: str
    event_id: int | None = None


class SealedIndex:
    """The checkpoints' sealed lists, for looking events up by id: each list is checked
    against its checkpoint's signed root, and the checkpoint against its signature and the
    trusted keys, before it is believed."""

    def __init__(self, using: str, trusted: dict[str, str]) -> None:
        self.using = using
        self.trusted = trusted
        self.checkpoints = list(
            Checkpoint.objects.using(using).defer("leaves").order_by("after_id")
        )
        self._starts = [checkpoint.after_id for checkpoint in self.checkpoints]
        self.sealed_through = max((cp.last_id for cp in self.checkpoints), default=0)
        self._lists: OrderedDict[int, tuple[list[int], list[bytes]] | str] = OrderedDict()

    def checkpoint_of(self, event_id: int) -> Checkpoint | None:
        position = bisect.bisect_left(self._starts, event_id) - 1
        if position >= 0 and event_id <= self.checkpoints[position].last_id:
            return self.checkpoints[position]
        return None

    def entries(self, checkpoint: Checkpoint) -> tuple[list[int], list[bytes]] | str:
        """The checkpoint's sealed ids and leaf hashes, or why they cannot be trusted."""
        found = self._lists.get(checkpoint.sequence)
        if found is not None:
            self._lists.move_to_end(checkpoint.sequence)
            return found
        found = self._load(checkpoint)
        self._lists[checkpoint.sequence] = found
        if len(self._lists) > _CACHED_CHECKPOINTS:
            self._lists.popitem(last=False)
        return found

    def _load(self, checkpoint: Checkpoint) -> tuple[list[int], list[bytes]] | str:
        problem = integrity.checkpoint_problem(checkpoint)
        if problem:
            return f"checkpoint #{checkpoint.sequence}: {problem}"
        if self.trusted.get(checkpoint.key_id) != checkpoint.public_key:
            return f"checkpoint #{checkpoint.sequence} is signed by a key that is not trusted"
        blob = (
            Checkpoint.objects.using(self.using)
            .filter(pk=checkpoint.pk)
            .values_list("leaves", flat=True)
            .get()
        )
        try:
            leaves = integrity.unpack_leaves(bytes(blob))
        except ValueError:
            leaves = []
        hashes = [leaf.hash for leaf in leaves]
        if merkle.merkle_root(hashes) != checkpoint.root:
            return f"checkpoint #{checkpoint.sequence}'s sealed list does not match its root"
        return [leaf.id for leaf in leaves], hashes

    def sealed_hash(self, event_id: int) -> tuple[Checkpoint, bytes | None] | str | None:
        """The event's checkpoint and sealed leaf hash (``None`` when the checkpoint does
        not list it); ``None`` above the newest checkpoint; a message when the checkpoint
        cannot be trusted."""
        checkpoint = self.checkpoint_of(event_id)
        if checkpoint is None:
            return None
        entries = self.entries(checkpoint)
        if isinstance(entries, str):
            return entries
        ids, hashes = entries
        position = bisect.bisect_left(ids, event_id)
        if position < len(ids) and ids[position] == event_id:
            return checkpoint, hashes[position]
        return checkpoint, None

    def sealed_between(self, low: int, high: int) -> list[int]:
        """The ids strictly between ``low`` and ``high`` that some checkpoint sealed."""
        found: list[int] = []
        position = max(bisect.bisect_left(self._starts, low + 1) - 1, 0)
        while position < len(self.checkpoints):
            checkpoint = self.checkpoints[position]
            if checkpoint.after_id >= high - 1:
                break
            if checkpoint.last_id > low:
                entries = self.entries(checkpoint)
                if not isinstance(entries, str):
                    ids = entries[0]
                    start = bisect.bisect_right(ids, low)
                    stop = bisect.bisect_left(ids, high)
                    found.extend(ids[start:stop])
            position += 1
        return found


@dataclasses.dataclass
class ArchiveCheck:
    """What checking an archive's events against the checkpoints found."""

    count: int = 0
    first_id: int | None = None
    last_id: int | None = None
    unsealed: int = 0
    builder: merkle.RootBuilder = dataclasses.field(default_factory=merkle.RootBuilder)
    checkpoints: dict[int, Checkpoint] = dataclasses.field(default_factory=dict)
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def add(self, kind: str, message: str, event_id: int | None = None) -> None:
        self.findings.append(Finding(kind, message, event_id))


def check_events(
    rows: Iterable[dict[str, Any]], index: SealedIndex, runs: list[list[int]]
) -> ArchiveCheck:
    """Check events (in id order) against the checkpoints: each sealed one as sealed, and,
    between two events of one run, no sealed event left out."""
    check = ArchiveCheck()
    run_starts = [run[0] for run in runs]
    previous: int | None = None
    for row in rows:
        event_id = int(row["id"])
        fields = integrity.leaf_fields(sealed_row(row))
        hashed = merkle.leaf_hash(merkle.leaf_bytes(fields))
        check.builder.add(hashed)
        check.count += 1
        if previous is not None and event_id <= previous:
            check.add("order", f"event id {event_id} comes after {previous}", event_id)
        if check.first_id is None:
            check.first_id = event_id
        check.last_id = event_id
        sealed = index.sealed_hash(event_id)
        if isinstance(sealed, str):
            check.add("checkpoint", f"event {fields['uuid']} (id {event_id}): {sealed}", event_id)
        elif sealed is None:
            check.unsealed += 1
        else:
            checkpoint, expected = sealed
            check.checkpoints[checkpoint.sequence] = checkpoint
            if expected is None:
                check.add(
                    "inserted",
                    f"event {fields['uuid']} (id {event_id}) is not among the events"
                    f" checkpoint #{checkpoint.sequence} sealed",
                    event_id,
                )
            elif expected != hashed:
                check.add(
                    "modified",
                    f"event {fields['uuid']} (id {event_id}) differs from what checkpoint"
                    f" #{checkpoint.sequence} sealed",
                    event_id,
                )
        if previous is not None and _same_run(run_starts, runs, previous, event_id):
            left_out = index.sealed_between(previous, event_id)
            if left_out:
                check.add(
                    "deleted",
                    f"{len(left_out)} sealed events between ids {previous} and {event_id}"
                    f" (ids {left_out[0]} to {left_out[-1]}) are not in the archive",
                    left_out[0],
                )
        previous = event_id
    return check


def _same_run(starts: list[int], runs: list[list[int]], low: int, high: int) -> bool:
    position = bisect.bisect_right(starts, low) - 1
    return position >= 0 and runs[position][0] <= low and high <= runs[position][1]


# Runs: where every event of the table, between two ids, belonged to the month.


def month_runs(connection: Any, ids: list[int]) -> list[list[int]]:
    """Split a month's ids (sorted) where an event of another month lies between two of
    them; the runs are ``[first, last]`` pairs."""
    if not ids:
        return []
    table = connection.ops.quote_name(partitions.TABLE)
    gaps = [(low, high) for low, high in itertools.pairwise(ids) if high > low + 1]
    breaks: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(gaps), GAP_CHUNK):
            chunk = gaps[start : start + GAP_CHUNK]
            cursor.execute(
                "SELECT gap.low FROM unnest(%s::bigint[], %s::bigint[]) AS gap(low, high)"
                f" WHERE EXISTS (SELECT 1 FROM {table} event"
                " WHERE event.id > gap.low AND event.id < gap.high)",
                [[low for low, _ in chunk], [high for _, high in chunk]],
            )
            breaks.update(int(row[0]) for row in cursor.fetchall())
    runs = [[ids[0], ids[0]]]
    for low, high in itertools.pairwise(ids):
        if low in breaks:
            runs.append([high, high])
        else:
            runs[-1][1] = high
    return runs


# Holds


def active_holds(using: str = DEFAULT_DB_ALIAS) -> list[LegalHold]:
    return list(
        LegalHold.objects.using(using)
        .filter(released_at__isnull=True)
        .select_related("course", "account")
        .order_by("pk")
    )


def _held_scope(hold: LegalHold, using: str) -> tuple[list[int], list[int]]:
    """The course ids and account ids whose events a hold keeps."""
    if hold.course_id is not None:
        return [hold.course_id], []
    assert hold.account is not None
    accounts = list(
        Account.objects.using(using).filter(hold.account.subtree_q()).values_list("pk", flat=True)
    )
    courses = list(
        Course.objects.using(using).filter(account_id__in=accounts).values_list("pk", flat=True)
    )
    return courses, accounts


def holds_keeping(
    connection: Any, part: partitions.PartitionInfo, holds: list[LegalHold], using: str
) -> list[LegalHold]:
    """The holds with an event in the partition: any of them keeps the month."""
    keeping = []
    table = connection.ops.quote_name(part.name)
    with connection.cursor() as cursor:
        for hold in holds:
            courses, accounts = _held_scope(hold, using)
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {table}"
                " WHERE course_id = ANY(%s) OR account_id = ANY(%s))",
                [courses, accounts],
            )
            if cursor.fetchone()[0]:
                keeping.append(hold)
    return keeping


# Archiving a month


def month_label(part: partitions.PartitionInfo) -> str:
    if part.start is not None and part.end == partitions.add_months(part.start, 1):
        return f"{part.start:%Y-%m}"
    return part.name


def _stream_partition(connection: Any, name: str) -> Iterator[dict[str, Any]]:
    columns = event_columns()
    quote = connection.ops.quote_name
    select = ", ".join(quote(column) for column, _ in columns)
    names = [name for _, name in columns]
    last = integrity.MIN_ID
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {select} FROM {quote(name)} WHERE id > %s ORDER BY id LIMIT %s",
                [last, CHUNK],
            )
            rows = cursor.fetchall()
        for row in rows:
            event = dict(zip(names, row, strict=True))
            # Django reads jsonb as text (its JSONField decodes it): so does this cursor.
            if isinstance(event["event_data"], str):
                event["event_data"] = json.loads(event["event_data"])
            yield event
        if len(rows) < CHUNK:
            return
        last = rows[-1][0]


def _manifest_name(archive_name: str) -> str:
    return archive_name.removesuffix(".jsonl.gz") + ".manifest.json"


def archive_month(
    using: str,
    part: partitions.PartitionInfo,
    *,
    key: Ed25519PrivateKey | None,
    index: SealedIndex,
    now: dt.datetime | None = None,
) -> PruneNote:
    """Write a partition's events to a sealed archive in the digest storage, read it back
    and check it against the checkpoints, and save the signed prune note (in the caller's
    transaction). Raises ``ArchiveError`` when the archive does not verify."""
    connection = connections[using]
    storage = integrity.digest_storage()
    moment = now or timezone.now()
    label = month_label(part)
    digest = hashlib.sha256()
    ids: list[int] = []
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        with gzip.GzipFile(fileobj=spool, mode="wb", mtime=0) as compressed:
            for row in _stream_partition(connection, part.name):
                ids.append(int(row["id"]))
                compressed.write(archive_line(row))
        spool.seek(0)
        for block in iter(lambda: spool.read(1 << 20), b""):
            digest.update(block)
        size = spool.tell()
        spool.seek(0)
        stamp = f"{moment:%Y%m%dT%H%M%S%fZ}"
        name = storage.save(f"{ARCHIVE_DIR}/{label}/{stamp}.jsonl.gz", File(spool))
    runs = month_runs(connection, ids)
    # Read back what the storage holds, and check it before anything is dropped.
    with storage.open(name, "rb") as stored:
        stored_digest, stored_size, rows = _read_archive(stored)
        check = check_events(rows, index, runs)
    if stored_digest != digest.hexdigest() or stored_size != size:
        raise ArchiveError(f"{part.name}: the stored archive {name} is not the file written")
    if check.count != len(ids):
        raise ArchiveError(
            f"{part.name}: the stored archive holds {check.count} events, not {len(ids)}"
        )
    if check.findings:
        raise ArchiveError(
            f"{part.name}: the archive does not verify against the checkpoints: "
            + "; ".join(finding.message for finding in check.findings[:5])
        )
    if check.unsealed and index.checkpoints:
        raise ArchiveError(
            f"{part.name}: {check.unsealed} of its events are not sealed yet; run"
            " course_audit_checkpoint first"
        )
    if key is None and index.checkpoints:
        raise ArchiveError(
            "COURSE_AUDIT_SIGNING_KEY is not set, but events are sealed: a prune note must"
            " be signed for verification to accept the dropped month"
        )
    public = key.public_key() if key is not None else None
    key_id = merkle.key_id(public) if public else ""
    document = {
        "v": integrity.MANIFEST_VERSION,
        "kind": integrity.MANIFEST_KIND,
        "partition": part.name,
        "month": label,
        "start": merkle.utc_timestamp(part.start) if part.start else None,
        "end": merkle.utc_timestamp(part.end) if part.end else None,
        "count": len(ids),
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "runs": runs,
        "archive": name,
        "sha256": digest.hexdigest(),
        "bytes": size,
        "leaves_root": check.builder.root(),
        "checkpoints": [
            {"sequence": cp.sequence, "hash": cp.hash, "root": cp.root}
            for _, cp in sorted(check.checkpoints.items())
        ],
        "created_at": merkle.utc_timestamp(moment),
        "key_id": key_id,
        "public_key": merkle.public_key_b64(public) if public else "",
    }
    manifest = integrity.sign_manifest(document, key)
    storage.save(_manifest_name(name), io.BytesIO(manifest.file_bytes()))
    return PruneNote.objects.using(using).create(
        month=part.start or moment,
        partition=part.name,
        count=len(ids),
        archive=name,
        created_at=moment,
        manifest=merkle.canonical_json(document).decode(),
        key_id=key_id,
        signature=manifest.signature,
        hash=manifest.hash,
    )


def _read_archive(file: IO[bytes]) -> tuple[str, int, Iterator[dict[str, Any]]]:
    """The archive's SHA-256 and size (read first, whole), then its events one by one."""
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: file.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
    file.seek(0)

    def rows() -> Iterator[dict[str, Any]]:
        with gzip.GzipFile(fileobj=file, mode="rb") as lines:
            for line in lines:
                yield json.loads(line)

    return digest.hexdigest(), size, rows()


# Pruning


@dataclasses.dataclass
class PruneOutcome:
    """What a prune did (or, dry, would do) with each month past retention."""

    cutoff: dt.datetime
    dropped: list[tuple[partitions.PartitionInfo, PruneNote | None]] = dataclasses.field(
        default_factory=list
    )
    held: list[tuple[partitions.PartitionInfo, list[LegalHold]]] = dataclasses.field(
        default_factory=list
    )
    refused: list[tuple[partitions.PartitionInfo, str]] = dataclasses.field(default_factory=list)


def prune(
    using: str = DEFAULT_DB_ALIAS,
    *,
    keep_months: int,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> PruneOutcome:
    """Archive and drop every month whose rows are all older than ``keep_months`` months,
    except those an active legal hold keeps; ``dry_run`` only says what would go and what
    a hold keeps. Each month goes in a transaction of its own, with its prune note: one
    whose archive does not verify stays (``refused``), the others go on."""
    if keep_months < 1:
        raise ValueError("keep_months must be at least 1")
    cutoff = partitions.retention_cutoff(keep_months, now)
    outcome = PruneOutcome(cutoff=cutoff)
    if not partitions.is_partitioned(using):
        return outcome
    connection = connections[using]
    holds = active_holds(using)
    key = None if dry_run else integrity.signing_key()
    index = SealedIndex(using, integrity.trusted_keys())
    for part in partitions.expired_partitions(using, cutoff):
        keeping = holds_keeping(connection, part, holds, using)
        if keeping:
            outcome.held.append((part, keeping))
            continue
        if dry_run:
            outcome.dropped.append((part, None))
            continue
        try:
            with transaction.atomic(using=using):
                note = archive_month(using, part, key=key, index=index, now=now)
                partitions.drop_partition(using, part)
        except ArchiveError as error:
            outcome.refused.append((part, str(error)))
            continue
        outcome.dropped.append((part, note))
    return outcome


# Verification of prune notes and archives


@dataclasses.dataclass
class ArchiveReport:
    """What ``verify_archive`` found."""

    name: str
    count: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "intact" if self.intact else "NOT INTACT"
        return f"{state}: archive {self.name}, {self.count:,} events; {len(self.problems)} problems"


def open_archive(path: str) -> tuple[str, IO[bytes], integrity.Manifest | None]:
    """An archive by a local path or a name in the digest storage, and its manifest
    (``None`` when there is none beside it)."""
    storage = integrity.digest_storage()
    name = path
    if path.endswith(".manifest.json"):
        name = path.removesuffix(".manifest.json") + ".jsonl.gz"
    manifest_path = _manifest_name(name)
    raw: bytes | None = None
    if os.path.exists(name):
        archive: IO[bytes] = open(name, "rb")  # noqa: SIM115  (the caller closes it)
        if os.path.exists(manifest_path):
            with open(manifest_path, "rb") as manifest:
                raw = manifest.read()
    elif storage.exists(name):
        archive = storage.open(name, "rb")
        if storage.exists(manifest_path):
            with storage.open(manifest_path, "rb") as manifest:
                raw = manifest.read()
    else:
        raise ArchiveError(f"no archive {name!r}, locally or in the digest storage")
    return name, archive, _parse_manifest(raw)


def _parse_manifest(raw: bytes | None) -> integrity.Manifest | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return integrity.Manifest(
            document=dict(data["manifest"]),
            signature=str(data["signature"]),
            hash=str(data["hash"]),
        )
    except (ValueError, KeyError, TypeError):
        return integrity.Manifest(document={}, signature="", hash="")


def verify_archive(
    path: str, *, using: str = DEFAULT_DB_ALIAS, trusted: dict[str, str] | None = None
) -> ArchiveReport:
    """Check an archive file against its signed manifest, its prune note and the signed
    checkpoints: the file's hash and size, each event as sealed, no sealed event of its
    runs left out, the count and the leaves' root."""
    keys = integrity.trusted_keys() if trusted is None else trusted
    name, archive, manifest = open_archive(path)
    report = ArchiveReport(name=name)
    with archive:
        if manifest is None:
            report.problems.append(f"no manifest beside {name}")
            return report
        problem = integrity.manifest_problem(manifest, keys)
        if problem:
            report.problems.append(f"the manifest: {problem}")
        document = manifest.document
        note = PruneNote.objects.using(using).filter(hash=manifest.hash).first()
        if note is None:
            report.problems.append(
                "the database holds no prune note with this manifest's hash"
                " (the note was deleted, or the manifest is not the one signed)"
            )
        digest, size, rows = _read_archive(archive)
        if digest != document.get("sha256") or size != document.get("bytes"):
            report.problems.append(
                "the file's SHA-256 or size is not the manifest's: the file was altered"
            )
        runs = [list(run) for run in document.get("runs", [])]
        try:
            check = check_events(rows, SealedIndex(using, keys), runs)
        except (OSError, EOFError, ValueError, KeyError) as error:
            report.problems.append(f"the file cannot be read as an archive: {error}")
            return report
        report.count = check.count
        report.problems.extend(finding.message for finding in check.findings)
        if check.count != document.get("count"):
            report.problems.append(
                f"the file holds {check.count} events, the manifest {document.get('count')}"
            )
        if check.builder.root() != document.get("leaves_root"):
            report.problems.append("the events' leaves do not match the manifest's root")
    return report


# Restore


def restore_month(
    month: str, *, using: str = DEFAULT_DB_ALIAS, trusted: dict[str, str] | None = None
) -> PruneNote:
    """Load an archived month (``YYYY-MM``) back into its partition, events unchanged,
    after its archive verified; returns the prune note it came from."""
    try:
        start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ArchiveError(f"a month is YYYY-MM, got {month!r}") from None
    note = PruneNote.objects.using(using).filter(month=start).order_by("-created_at").first()
    if note is None:
        raise ArchiveError(f"no prune note for {month}: it was never archived")
    report = verify_archive(note.archive, using=using, trusted=trusted)
    if not report.intact:
        raise ArchiveError(f"the archive of {month} does not verify: " + "; ".join(report.problems))
    end = partitions.add_months(start, 1)
    connection = connections[using]
    storage = integrity.digest_storage()
    with transaction.atomic(using=using):
        events = CourseEvent.objects.using(using)
        if events.filter(created_at__gte=start, created_at__lt=end).exists():
            raise ArchiveError(f"{month} already holds events: restore it into an empty month")
        partitions.create_month(using, start)
        with storage.open(note.archive, "rb") as archive:
            _, _, rows = _read_archive(archive)
            _insert(connection, partitions.month_partition_name(start), rows)
    return note


def _insert(connection: Any, table: str, rows: Iterable[dict[str, Any]]) -> None:
    quote = connection.ops.quote_name
    fields = CourseEvent._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(f"%s::{field.db_type(connection)}" for field in fields)
    sql = f"INSERT INTO {quote(table)} ({columns}) VALUES ({values})"
    batch: list[list[Any]] = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append(
                [
                    json.dumps(row[field.attname])
                    if field.attname == "event_data"
                    else row[field.attname]
                    for field in fields
                ]
            )
            if len(batch) >= 1000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
