"""Importing Canvas's SIS ``courses.csv``.

One run is one :class:`~course_audit.models.SisBatch`. The file is read and checked first
(encoding, CSV syntax, header), so a file that cannot be imported changes nothing. The rows
are then applied in chunks, each in its own transaction: the courses of a chunk are fetched
by SIS id in one query, the new ones are written with ``Course.objects.bulk_create()`` and
the changed ones with ``Course.objects.bulk_update()``, which record their events in the
same transaction, with source ``sis`` and the batch linked. A row that would change nothing
is not written, so re-running a file records nothing.

A bad row is skipped and reported as ``line N: <reason>`` (the header is line 1); the good
rows are applied.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TextIO

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.db.models import Q
from django.utils import timezone

from course_audit import recording
from course_audit.context import audit_context
from course_audit.diff import SIS_COLUMNS
from course_audit.filters import OutOfRange, parse_timestamp
from course_audit.models import Account, Course, CourseEvent, SisBatch
from course_audit.types import User

try:
    from tqdm import tqdm
except ImportError:  # tqdm is optional: without it, no progress bar.

    class tqdm:  # type: ignore[no-redef]  # a stand-in that draws nothing
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc_info: object) -> None:
            pass

        def update(self, n: int = 1) -> None:
            pass


State = Course.WorkflowState

REQUIRED_COLUMNS: tuple[str, ...] = ("course_id", "long_name", "status")
"""Columns a ``courses.csv`` must have. The optional ones - ``short_name``, ``account_id``,
``start_date``, ``end_date`` - leave an existing course's value alone when absent."""

# ``active`` only says the course exists: see ``_target_state``.
STATUSES: dict[str, str | None] = {
    "active": None,
    "published": State.AVAILABLE,
    "unpublished": State.UNPUBLISHED,
    "completed": State.COMPLETED,
    "deleted": State.DELETED,
}

# Rows per transaction. Each chunk's queries stay far below PostgreSQL's 65,535 parameters.
CHUNK_SIZE = 2000
# Seconds between tries to mark a batch failed when the database is away (about 7 s in all).
FINISH_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
# Rows per UPDATE of ``bulk_update()``: it sets each field with a CASE of one WHEN per row,
# which the database evaluates for every row, so its cost grows with the square of this.
UPDATE_BATCH_SIZE = 500


def _max_length(name: str) -> int:
    field = Course._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length is not None
    return field.max_length


_MAX_LENGTHS = {name: _max_length(name) for name in ("sis_course_id", "name", "course_code")}

# The course fields an import compares and writes: those its columns set, and the state.
_LOADED_FIELDS = ("pk", *SIS_COLUMNS.values(), "root_account_id", "workflow_state")


class SisImportError(ValueError):
    """The import cannot run at all: a bad root account, an unreadable file or a header
    without a required column. No course was changed."""


class _BadRow(Exception):
    """One row's reason to be skipped."""


@dataclasses.dataclass(frozen=True)
class _Header:
    columns: dict[str, int]
    width: int


@dataclasses.dataclass(frozen=True)
class _Row:
    line: int
    sis_course_id: str
    status: str
    # Blank means "keep the name" for an existing course; a new course needs one.
    name: str
    # Model attribute -> value, only for the optional columns the file has.
    values: dict[str, Any]


@dataclasses.dataclass
class _Tally:
    applied: int = 0
    skipped: int = 0
    created: int = 0
    updated: int = 0
    messages: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        self.messages.append((line, reason))

    def add(self, other: _Tally) -> None:
        self.applied += other.applied
        self.skipped += other.skipped
        self.created += other.created
        self.updated += other.updated
        self.messages.extend(other.messages)

    def lines(self) -> list[str]:
        return [f"line {line}: {reason}" for line, reason in sorted(self.messages)]


_COUNTERS = ["rows_total", "rows_applied", "rows_skipped", "courses_created", "courses_updated"]


def import_courses_csv(
    *,
    file: TextIO | str | os.PathLike[str],
    root_account: Account,
    user: User | None = None,
    progress: bool = False,
    filename: str = "",
) -> SisBatch:
    """Import a Canvas ``courses.csv`` into ``root_account`` as one ``SisBatch``.

    ``file`` is a path or an open text file; ``filename`` names it on the batch (by
    default the path's last part). ``user`` is recorded as the batch's and the events'
    actor. With ``progress`` a progress bar is drawn on stderr.

    Returns the batch, ``imported`` or ``imported_with_messages``: its counters and
    ``messages`` (``line N: <reason>`` for each skipped row) are the run's summary.
    Raises :class:`SisImportError` when the file cannot be imported at all (the batch, if
    one was started, ends ``failed``). An error while applying the rows (a database error,
    say) marks the batch ``failed`` and is re-raised: the chunks applied before it stay
    applied, each with its events; the failing chunk is rolled back.
    """
    if not root_account.is_root:
        raise SisImportError(
            f"Account {root_account.pk} ({root_account.name}) is not a root account."
        )
    if root_account.workflow_state == Account.WorkflowState.DELETED:
        raise SisImportError(f"Root account {root_account.pk} is deleted.")
    with _opened(file) as stream:
        batch = SisBatch.objects.create(
            root_account=root_account,
            user=user,  # type: ignore[misc]  # the host's user model, unknown to the stubs
            filename=filename or _name_of(file),
            workflow_state=SisBatch.WorkflowState.IMPORTING,
        )
        try:
            header, records = _read(stream)
        except SisImportError as error:
            _finish(batch, SisBatch.WorkflowState.FAILED, [str(error)])
            raise
    batch.rows_total = len(records)
    reader = _RowReader(header, root_account)
    tally = _Tally()
    with (
        audit_context(source=CourseEvent.EventSource.SIS, sis_batch=batch, user=user),
        tqdm(total=len(records), unit="row", file=sys.stderr, disable=not progress) as bar,
    ):
        for chunk in recording.chunks(records, CHUNK_SIZE):
            rows: list[_Row] = []
            for line, cells in chunk:
                try:
                    rows.append(reader.read(line, cells))
                except _BadRow as reason:
                    tally.skip(line, str(reason))
            try:
                with transaction.atomic():
                    done = _apply(rows, root_account)
                    # Saved in the chunk's transaction: the counters always match what
                    # was committed, even when a later chunk fails.
                    _count(batch, tally, done)
                    batch.save(update_fields=_COUNTERS)
            # Whatever stops the run, the batch must not stay "importing": it is marked
            # failed and the error goes on to the caller.
            except BaseException as error:
                # The counters as committed: the failed chunk's were set on the batch in its
                # transaction, which rolled back.
                _count(batch, tally)
                lines = f"lines {chunk[0][0]}-{chunk[-1][0]}"
                messages = [*tally.lines(), f"Import failed at {lines}: {error!r}"]
                if not _finish_failed(batch, messages):
                    error.add_note(
                        f"SIS batch {batch.pk} is left 'importing': the database did not "
                        "come back in time to mark it failed."
                    )
                raise
            tally.add(done)
            bar.update(len(chunk))
    _count(batch, tally)
    state = (
        SisBatch.WorkflowState.IMPORTED_WITH_MESSAGES
        if tally.messages
        else SisBatch.WorkflowState.IMPORTED
    )
    _finish(batch, state, tally.lines())
    return batch


@contextmanager
def _opened(file: TextIO | str | os.PathLike[str]) -> Iterator[TextIO]:
    if isinstance(file, str | os.PathLike):
        # utf-8-sig: spreadsheet programs often start a UTF-8 CSV with a byte-order mark.
        with open(file, encoding="utf-8-sig", newline="") as stream:
            yield stream
    else:
        yield file


def _name_of(file: TextIO | str | os.PathLike[str]) -> str:
    name = file if isinstance(file, str | os.PathLike) else getattr(file, "name", "")
    return Path(name).name if isinstance(name, str | os.PathLike) else ""


def _read(stream: TextIO) -> tuple[_Header, list[tuple[int, list[str]]]]:
    """The header, and each non-blank record with the line it starts on."""
    reader = csv.reader(stream)
    records: list[tuple[int, list[str]]] = []
    try:
        cells = next(reader, None)
        if cells is None:
            raise SisImportError("The file is empty: a courses.csv needs a header line.")
        columns: dict[str, int] = {}
        for index, name in enumerate(cells):
            columns.setdefault(name.strip().lstrip("\ufeff").lower(), index)
        columns.pop("", None)
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise SisImportError(
                f"The header has no {', '.join(missing)} column"
                f"{'s' if len(missing) > 1 else ''}; a courses.csv needs "
                f"{', '.join(REQUIRED_COLUMNS)}."
            )
        header = _Header(columns=columns, width=len(cells))
        # A record may span lines (a quoted newline): it starts after the previous one ends.
        previous_end = reader.line_num
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((previous_end + 1, cells))
            previous_end = reader.line_num
    except csv.Error as error:
        raise SisImportError(f"line {reader.line_num}: not valid CSV: {error}") from error
    except UnicodeDecodeError as error:
        raise SisImportError(f"The file is not UTF-8 text: {error}") from error
    return header, records


class _RowReader:
    """Checks the records of one file against one root account, one at a time."""

    def __init__(self, header: _Header, root: Account) -> None:
        self.columns = header.columns
        self.width = header.width
        self.needed = max(header.columns.values()) + 1
        self.root_id: int = root.pk
        self.accounts = {
            str(sis_id): (pk, state == Account.WorkflowState.DELETED)
            for sis_id, pk, state in Account.objects.filter(
                Q(pk=root.pk) | Q(root_account=root), sis_account_id__isnull=False
            )
            .order_by()
            .values_list("sis_account_id", "pk", "workflow_state")
        }
        # Course id -> the line it was first read on.
        self.seen: dict[str, int] = {}
        # A file repeats the same few term dates on most of its rows.
        self.dates: dict[str, dt.datetime] = {}

    def read(self, line: int, cells: list[str]) -> _Row:
        """The row of one record; raises ``_BadRow`` with the reason to skip it."""
        if len(cells) < self.needed or any(cell.strip() for cell in cells[self.width :]):
            raise _BadRow(f"{len(cells)} fields, but the header has {self.width}")
        columns = self.columns
        sis_course_id = cells[columns["course_id"]].strip()
        if not sis_course_id:
            raise _BadRow("course_id is missing")
        first = self.seen.setdefault(sis_course_id, line)
        if first != line:
            raise _BadRow(f'course_id "{sis_course_id}" is already on line {first}')
        _check_length("course_id", sis_course_id, "sis_course_id")
        raw_status = cells[columns["status"]].strip()
        status = raw_status.lower()
        if status not in STATUSES:
            if not raw_status:
                raise _BadRow("status is missing")
            raise _BadRow(f'status "{raw_status}" is not one of {", ".join(STATUSES)}')
        name = cells[columns["long_name"]].strip()
        _check_length("long_name", name, "name")
        values: dict[str, Any] = {}
        if "short_name" in columns:
            values["course_code"] = cells[columns["short_name"]].strip()
            _check_length("short_name", values["course_code"], "course_code")
        if "account_id" in columns:
            values["account_id"] = self._account(cells[columns["account_id"]].strip())
        if "start_date" in columns:
            values["start_at"] = self._when("start_date", cells[columns["start_date"]].strip())
        if "end_date" in columns:
            values["conclude_at"] = self._when("end_date", cells[columns["end_date"]].strip())
        return _Row(line=line, sis_course_id=sis_course_id, status=status, name=name, values=values)

    def _account(self, sis_account_id: str) -> int:
        if not sis_account_id:
            return self.root_id
        found = self.accounts.get(sis_account_id)
        if found is None:
            raise _BadRow(f'account_id "{sis_account_id}" is not an account of this root account')
        pk, deleted = found
        if deleted:
            raise _BadRow(f'account_id "{sis_account_id}" is a deleted account')
        return pk

    def _when(self, column: str, text: str) -> dt.datetime | None:
        """An ISO 8601 date-time or date (``filters.parse_timestamp``), in whole seconds."""
        if not text:
            return None
        value = self.dates.get(text)
        if value is None:
            try:
                value = parse_timestamp(text)
            except OutOfRange:
                raise _BadRow(f'{column} "{text}" is out of the supported range') from None
            except ValueError:
                raise _BadRow(f'{column} "{text}" is not an ISO 8601 date or date-time') from None
            # Dates are shown, and so compared, in whole seconds.
            value = self.dates[text] = value.replace(microsecond=0)
        return value


def _check_length(column: str, value: str, field_name: str) -> None:
    limit = _MAX_LENGTHS[field_name]
    if len(value) > limit:
        raise _BadRow(f"{column} is longer than {limit} characters")


def _apply(rows: Sequence[_Row], root: Account) -> _Tally:
    """Create and change the courses of one chunk of rows (in the caller's transaction)."""
    tally = _Tally()
    # No row locks here: bulk_update() locks the rows it writes and diffs against what they
    # hold then, so the events are exact even if a course changed since this read.
    existing = {
        course.sis_course_id: course
        for course in Course.objects.filter(
            root_account=root, sis_course_id__in=[row.sis_course_id for row in rows]
        )
        .order_by()
        .only(*_LOADED_FIELDS)
    }
    new: list[Course] = []
    changed: list[Course] = []
    fields: set[str] = set()
    for row in rows:
        course = existing.get(row.sis_course_id)
        try:
            if course is None:
                new.append(_new_course(row, root))
            else:
                written = _change(course, row)
                if written:
                    changed.append(course)
                    fields |= written
        except _BadRow as reason:
            tally.skip(row.line, str(reason))
        else:
            tally.applied += 1
    if new:
        Course.objects.bulk_create(new, batch_size=CHUNK_SIZE)
    if changed:
        now = timezone.now()
        for course in changed:
            course.updated_at = now
        Course.objects.bulk_update(
            changed, sorted(fields | {"updated_at"}), batch_size=UPDATE_BATCH_SIZE
        )
    tally.created = len(new)
    tally.updated = len(changed)
    return tally


def _new_course(row: _Row, root: Account) -> Course:
    if not row.name:
        raise _BadRow("long_name is missing (required for a new course)")
    values: dict[str, Any] = {
        "course_code": "",
        "account_id": root.pk,
        "start_at": None,
        "conclude_at": None,
    }
    values.update(row.values)
    _check_dates(values["start_at"], values["conclude_at"])
    return Course(
        sis_course_id=row.sis_course_id,
        name=row.name,
        root_account_id=root.pk,
        workflow_state=STATUSES[row.status] or State.UNPUBLISHED,
        **values,
    )


def _change(course: Course, row: _Row) -> set[str]:
    """Set the row's values on ``course``; the names of the fields that really changed."""
    target = dict(row.values)
    if row.name:
        target["name"] = row.name
    target["workflow_state"] = _target_state(course.workflow_state, row.status)
    _check_dates(
        target.get("start_at", course.start_at), target.get("conclude_at", course.conclude_at)
    )
    written = set()
    for attribute, value in target.items():
        if not _same(getattr(course, attribute), value):
            setattr(course, attribute, value)
            written.add(attribute.removesuffix("_id"))
    return written


def _target_state(current: str, status: str) -> str:
    target = STATUSES[status]
    if target is not None:
        return target
    # ``active``: the course exists. A deleted one comes back (unpublished); any other
    # keeps its state.
    return State.UNPUBLISHED if current == State.DELETED else current


def _check_dates(start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start is not None and end is not None and end < start:
        raise _BadRow("end_date is before start_date")


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, dt.datetime) and isinstance(new, dt.datetime):
        return old.replace(microsecond=0) == new.replace(microsecond=0)
    return bool(old == new)


def _count(batch: SisBatch, *tallies: _Tally) -> None:
    batch.rows_applied = sum(tally.applied for tally in tallies)
    batch.rows_skipped = sum(tally.skipped for tally in tallies)
    batch.courses_created = sum(tally.created for tally in tallies)
    batch.courses_updated = sum(tally.updated for tally in tallies)


def _finish_failed(batch: SisBatch, messages: list[str]) -> bool:
    """Mark the batch failed, even when the error that stopped the import was the
    database going away: a restart or a failover is over in seconds, and a batch left
    ``importing`` would claim a run that has ended. False if it could not be marked."""
    connection = connections[batch._state.db or DEFAULT_DB_ALIAS]
    for delay in (*FINISH_RETRY_DELAYS, None):
        try:
            _finish(batch, SisBatch.WorkflowState.FAILED, messages)
            return True
        except DatabaseError:
            # Inside a caller's transaction the batch row goes with it: nothing to mark.
            if delay is None or connection.in_atomic_block:
                return False
            # A connection the server dropped stays broken until closed; the next query
            # then opens a new one.
            connection.close()
            time.sleep(delay)
    return False


def _finish(batch: SisBatch, state: str, messages: list[str]) -> None:
    batch.workflow_state = state
    batch.messages = messages
    batch.ended_at = timezone.now()
    batch.save()
