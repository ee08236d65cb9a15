"""Tamper evidence: signed checkpoints over the course events, their digest files, the
verifier, per-event proofs and the erasure of a person's name. See docs/integrity.md.

The pure rules (encodings, Merkle trees, signatures) are in ``course_audit.merkle``; this
module reads and writes the database and the digest storage. The management commands
``course_audit_checkpoint``, ``course_audit_verify``, ``course_audit_keygen`` and
``course_audit_erase_person`` and the API's proof endpoint only call it.

Membership: a checkpoint seals the events with ids in ``(after_id, last_id]``, where
``last_id`` is a high-water mark no still-open transaction can add below
(``sealable_high_water``), so an event that commits late always lands in a later checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import queue
import re
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, connections, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone
from django.utils.translation import gettext_lazy

from course_audit import merkle, proof
from course_audit.conf import conf
from course_audit.models import Checkpoint, CourseEvent, PruneNote

EVENT_TABLE = CourseEvent._meta.db_table
# How long the high-water lock waits for writing transactions before it gives up (the next
# run tries again) rather than holding back every new event behind it.
LOCK_TIMEOUT = "5s"
# Events read per query when sealing or verifying (keyset chunks: memory stays flat).
CHUNK = 5000
MIN_ID = -(2**63)
DIGEST_DIR = "digests"
PROOF_FORMAT = proof.PROOF_FORMAT
_DIGEST_NAME = re.compile(r"^(?P<sequence>\d{6,})-(?P<hash>[0-9a-f]{64})\.json$")
# What one entry of ``Checkpoint.leaves`` holds: id (8 bytes), UUID (16), leaf hash (32).
_ENTRY = 56
_ENTRY_LAYOUT = struct.Struct(">q16s32s")
# The stored columns a leaf seals, in the order ``leaf_fields`` reads them.
SEALED_COLUMNS = (
    "id",
    "uuid",
    "created_at",
    "course_id",
    "account_id",
    "event_type",
    "event_source",
    "event_data",
    "related_course_id",
    "user_id",
    "user_name",
    "user_name_digest",
    "sis_batch_id",
    "page_view_id",
    "db_role",
    "db_application",
    "db_client_addr",
    "recorded_at",
)


class SealingError(Exception):
    """A checkpoint could not be made (no key, a lock not granted, a concurrent run)."""


class NotSealed(Exception):
    """The event is not in any checkpoint yet."""


# Keys


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ImproperlyConfigured(f"cannot read the key file {path!r}: {error}") from error


def signing_key() -> Ed25519PrivateKey | None:
    """The private key of ``COURSE_AUDIT_SIGNING_KEY``, or ``None`` when it is unset."""
    path = conf.SIGNING_KEY
    if path is None:
        return None
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except ValueError as error:
        raise ImproperlyConfigured(f"{path!r} is not a PEM private key: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path!r} is not an Ed25519 private key")
    return key


def trusted_keys() -> dict[str, str]:
    """The public keys (base64 of the raw bytes) whose checkpoints verify, by key id:
    ``COURSE_AUDIT_TRUSTED_KEYS`` and the signing key's own."""
    found: dict[str, str] = {}
    for entry in conf.TRUSTED_KEYS:
        text = entry if _is_raw_key(entry) else _read(entry)
        try:
            public = merkle.load_public_key(text)
        except (ValueError, binascii.Error) as error:
            raise ImproperlyConfigured(f"trusted key {entry!r} is not an Ed25519 key") from error
        found[merkle.key_id(public)] = merkle.public_key_b64(public)
    private = signing_key()
    if private is not None:
        public = private.public_key()
        found[merkle.key_id(public)] = merkle.public_key_b64(public)
    return found


def _is_raw_key(entry: str) -> bool:
    """Whether a trusted key entry is the base64 of 32 raw bytes (else it is a path)."""
    try:
        return len(base64.b64decode(entry, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def generate_key_pair() -> tuple[bytes, bytes, str]:
    """A new Ed25519 key pair: the private key's PEM, the public key's PEM and its id."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem, merkle.key_id(private.public_key())


# Leaves


def leaf_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    """The sealed fields of an event read as ``SEALED_COLUMNS``.

    An erased name (``user_name`` blank, ``user_name_digest`` set) seals as its stored
    digest; any other name as the digest of the name itself, so a name changed beside a
    copied digest still shows.
    """
    (
        event_id,
        event_uuid,
        created_at,
        course_id,
        account_id,
        event_type,
        event_source,
        event_data,
        related_course_id,
        user_id,
        user_name,
        stored_digest,
        sis_batch_id,
        request_id,
        db_role,
        db_application,
        db_client_addr,
        recorded_at,
    ) = row
    uuid_text = str(event_uuid)
    if user_name == "" and stored_digest:
        name_digest = stored_digest
    else:
        name_digest = merkle.user_name_digest(uuid_text, user_name)
    fields: dict[str, Any] = {
        "v": merkle.LEAF_VERSION,
        "id": event_id,
        "uuid": uuid_text,
        "created_at": merkle.utc_timestamp(created_at),
        "course_id": course_id,
        "account_id": account_id,
        "event_type": event_type,
        "event_source": event_source,
        "event_data": event_data,
        "related_course_id": related_course_id,
        # The host's user key may be a UUID: sealed as text then.
        "user_id": user_id if user_id is None or isinstance(user_id, int) else str(user_id),
        "user_name_digest": name_digest,
        "sis_batch_id": sis_batch_id,
        "request_id": None if request_id is None else str(request_id),
        "db_role": db_role,
        "db_application": db_application,
        "db_client_addr": None if db_client_addr is None else str(db_client_addr),
    }
    if recorded_at is not None:
        fields["recorded_at"] = merkle.utc_timestamp(recorded_at)
    return fields


def stream_events(
    using: str, *, after: int, through: int | None = None
) -> Iterator[tuple[Any, ...]]:
    """Events with ids above ``after`` (up to ``through``) in id order, as
    ``SEALED_COLUMNS`` rows, read in keyset chunks."""
    events = CourseEvent.objects.using(using).order_by("id")
    if through is not None:
        events = events.filter(id__lte=through)
    last = after
    while True:
        chunk = list(events.filter(id__gt=last).values_list(*SEALED_COLUMNS)[:CHUNK])
        yield from chunk
        if len(chunk) < CHUNK:
            return
        last = chunk[-1][0]


@dataclasses.dataclass(frozen=True)
class Leaf:
    id: int
    uuid: str
    hash: bytes


def pack_leaf(event_id: int, event_uuid: str, hashed: bytes) -> bytes:
    return _entry_key(event_id, event_uuid) + hashed


def _entry_key(event_id: int, event_uuid: str) -> bytes:
    """The first 24 bytes of a sealed list's entry: the id and the UUID."""
    return event_id.to_bytes(8, "big", signed=True) + bytes.fromhex(event_uuid.replace("-", ""))


def _entry_id(entries: bytes, index: int) -> int:
    start = index * _ENTRY
    return int.from_bytes(entries[start : start + 8], "big", signed=True)


def unpack_leaves(blob: bytes) -> list[Leaf]:
    if len(blob) % _ENTRY:
        raise ValueError("the sealed leaves are not whole entries")
    leaves = []
    for start in range(0, len(blob), _ENTRY):
        entry = blob[start : start + _ENTRY]
        uuid_hex = entry[8:24].hex()
        leaves.append(
            Leaf(
                id=int.from_bytes(entry[:8], "big", signed=True),
                uuid=f"{uuid_hex[:8]}-{uuid_hex[8:12]}-{uuid_hex[12:16]}-{uuid_hex[16:20]}-"
                f"{uuid_hex[20:]}",
                hash=entry[24:],
            )
        )
    return leaves


def sealed_entries(
    using: str, *, after: int, through: int, limit: int | None = None
) -> tuple[bytes, list[bytes]]:
    """The events with ids in ``(after, through]`` (the first ``limit`` of them), as a
    checkpoint seals them: the entries ``Checkpoint.leaves`` holds (id, UUID and leaf hash
    of each, in id order) and the leaf hashes alone.

    On PostgreSQL the database and Python write each leaf together (``_LEAF_SELECT``):
    the bytes ``merkle.leaf_bytes(leaf_fields(row))`` makes, several times faster
    (tests/test_integrity.py compares the two on awkward values).
    """
    connection = connections[using]
    sql = _leaf_sql(connection)
    if sql is None:
        keys, hashes = _generic_entries(using, after=after, through=through, limit=limit)
    else:
        keys, hashes = _postgresql_entries(using, sql, after=after, through=through, limit=limit)
    return b"".join(itertools.chain.from_iterable(zip(keys, hashes, strict=True))), hashes


def _generic_entries(
    using: str, *, after: int, through: int, limit: int | None
) -> tuple[list[bytes], list[bytes]]:
    keys: list[bytes] = []
    hashes: list[bytes] = []
    rows = stream_events(using, after=after, through=through)
    for row in rows if limit is None else itertools.islice(rows, limit):
        fields = leaf_fields(row)
        keys.append(_entry_key(row[0], fields["uuid"]))
        hashes.append(merkle.leaf_hash(merkle.leaf_bytes(fields)))
    return keys, hashes


# The user key's types whose values a leaf holds as JSON numbers; others are text.
_INTEGER_KEYS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)
_TEXT_KEYS = frozenset({"UUIDField", "CharField", "TextField"})

# An event's leaf (``merkle.leaf_bytes``: its fields' canonical JSON, keys sorted) as
# PostgreSQL and Python write it together: the database the numbers, times and ids (their
# text is already their JSON), Python the strings (``json``'s escaping), the data's
# canonical JSON and the name's digest. The database's share costs it about as much as
# printing the plain columns; Python's about a fifth of ``leaf_fields`` and ``leaf_bytes``.
# Each row: the entry's first 24 bytes (id and UUID, as ``pack_leaf``); the JSON up to the
# time; the strings and the data, raw; the JSON from the id to the user id; the UUID; the
# stored digest of an erased name (else NULL: Python hashes the name) and the name.
# ``abbrev`` writes an ``inet`` as its output function does, as Django reads it. A time
# outside the years that ``to_char`` and ``strftime`` write alike leaves the head NULL:
# that event is encoded by ``leaf_fields``.
_LEAF_SELECT = """
SELECT int8send(id) || uuid_send(uuid),
    CASE WHEN created_at >= '1000-01-01T00:00:00Z' AND created_at < '10000-01-01T00:00:00Z'
        AND (recorded_at IS NULL
             OR recorded_at >= '1000-01-01T00:00:00Z' AND recorded_at < '10000-01-01T00:00:00Z')
    THEN '{{"account_id":' || account_id::text
        || ',"course_id":' || course_id::text
        || ',"created_at":"'
        || to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'
    END,
    db_application,
    '"' || abbrev(db_client_addr) || '"',
    db_role,
    event_data::text,
    event_source,
    event_type,
    ',"id":' || id::text
        || coalesce(',"recorded_at":"'
            || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"', '')
        || ',"related_course_id":' || coalesce(related_course_id::text, 'null')
        || ',"request_id":' || coalesce('"' || request_id::text || '"', 'null')
        || ',"sis_batch_id":' || coalesce(sis_batch_id::text, 'null')
        || ',"user_id":' || {user_id},
    uuid::text,
    CASE WHEN user_name = '' AND user_name_digest <> '' THEN user_name_digest END,
    user_name
FROM {table} WHERE id > %s AND id <= %s ORDER BY id LIMIT %s
"""
_LEAF_TEMPLATE = (
    '%s,"db_application":%s,"db_client_addr":%s,"db_role":%s,"event_data":%s'
    ',"event_source":%s,"event_type":%s%s,"user_name_digest":%s,"uuid":"%s","v":1}'
)
# Rows per query of ``_LEAF_SELECT`` (keyset chunks, as ``stream_events``).
_LEAF_CHUNK = 10_000


def _leaf_sql(connection: Any) -> str | None:
    """``_LEAF_SELECT`` for this database, or None where ``leaf_fields`` encodes (not
    PostgreSQL, or a host user key that is neither a number nor text)."""
    if connection.vendor != "postgresql":
        return None
    user_key = CourseEvent._meta.get_field("user").target_field.get_internal_type()
    if user_key in _INTEGER_KEYS:
        user_id = "coalesce(user_id::text, 'null')"
    elif user_key in _TEXT_KEYS:
        user_id = "coalesce(to_json(user_id::text)::text, 'null')"
    else:
        return None
    return _LEAF_SELECT.format(user_id=user_id, table=connection.ops.quote_name(EVENT_TABLE))


def _postgresql_entries(
    using: str, sql: str, *, after: int, through: int, limit: int | None
) -> tuple[list[bytes], list[bytes]]:
    keys: list[bytes] = []
    hashes: list[bytes] = []
    last = after
    with connections[using].cursor() as cursor:
        while True:
            size = _LEAF_CHUNK if limit is None else min(_LEAF_CHUNK, limit - len(keys))
            cursor.execute(sql, [last, through, size])
            rows = cursor.fetchall()
            _hash_leaf_rows(using, rows, keys, hashes)
            if len(rows) < size or len(keys) == limit:
                return keys, hashes
            last = int.from_bytes(keys[-1][:8], "big", signed=True)


def _hash_leaf_rows(
    using: str, rows: list[tuple[Any, ...]], keys: list[bytes], hashes: list[bytes]
) -> None:
    """Add the entry keys and leaf hashes of rows of ``_LEAF_SELECT`` to ``keys`` and
    ``hashes``."""
    add_key, add_hash = keys.append, hashes.append
    canonical, quote = merkle.canonical_json_text, json.encoder.encode_basestring
    leaf_hash, name_digest, template = merkle.leaf_hash, merkle.user_name_digest, _LEAF_TEMPLATE
    for key, head, app, addr, role, data, source, kind, tail, uuid_, erased, name in rows:
        add_key(key)
        if head is None:
            add_hash(_leaf_hash_of(using, int.from_bytes(key[:8], "big", signed=True)))
            continue
        leaf = template % (
            head,
            quote(app),
            addr or "null",
            quote(role),
            canonical(data),
            quote(source),
            quote(kind),
            tail,
            quote(name_digest(uuid_, name) if erased is None else erased),
            uuid_,
        )
        add_hash(leaf_hash(leaf.encode()))


def _psycopg3() -> bool:
    """Whether PostgreSQL is reached through psycopg 3 (a second connection opened as
    Django opens its own, and parameters bound on the server), not psycopg2."""
    # Imported only on PostgreSQL: it needs a driver, which a SQLite site may not have.
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


class _LeafReader:
    """The rows of ``_LEAF_SELECT`` over ``(after, through]`` read ahead by a thread on a
    connection of its own, so that PostgreSQL prints the next chunk while Python hashes
    this one (``seal``: about 40 % of its CPU time is the database's).

    Only for ids up to a high-water mark (``sealable_high_water``): every transaction that
    could add an event at or below it had ended before it was read, so any snapshot taken
    since sees the same events there, whichever connection takes it, as each chunk of the
    serial path (a statement of its own in autocommit) does. The thread reads the range
    in the checkpoints' order and sizes (runs of ``limit`` rows), so each checkpoint
    takes whole chunks: ``entries`` checks it is asked for the range where the thread is.
    """

    def __init__(self, using: str, sql: str, raw: Any, *, after: int, through: int, limit: int):
        self.using = using
        self.position = after
        self.exhausted = False
        self._raw = raw
        # Each item: a chunk and whether it is the range's last, a database error, or
        # None once the thread has stopped. One chunk waits while the next is read.
        self._chunks: queue.Queue[tuple[list[tuple[Any, ...]], bool] | Exception | None] = (
            queue.Queue(maxsize=1)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._read,
            args=(sql, after, through, limit),
            name="course_audit-leaf-reader",
            daemon=True,
        )
        self._thread.start()

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, using: str, *, after: int, through: int, limit: int
    ) -> Iterator[_LeafReader | None]:
        """A reader over ``(after, through]``, or None where the serial path reads: not
        PostgreSQL through psycopg 3, no ``_LEAF_SELECT``, inside a transaction (whose own
        writes another connection would not see), or a range of one chunk at most (nothing
        to overlap: a run every few minutes opens no second connection)."""
        connection: Any = connections[using]
        sql = _leaf_sql(connection)
        if (
            sql is None
            or through - after <= _LEAF_CHUNK
            or connection.in_atomic_block
            or not _psycopg3()
        ):
            yield None
            return
        database = connection.Database
        try:
            raw = database.connect(**connection.get_connection_params(), autocommit=True)
        except database.OperationalError:
            # No second connection to be had (max_connections, a pooler's limit): the
            # serial path needs none.
            yield None
            return
        with raw:
            role = connection.settings_dict["OPTIONS"].get("assume_role")
            if role:
                raw.execute(connection.ops.compose_sql("SET ROLE %s", [role]))
            reader = cls(using, sql, raw, after=after, through=through, limit=limit)
            try:
                yield reader
            finally:
                reader._close()

    def _read(self, sql: str, after: int, through: int, limit: int) -> None:
        try:
            last, taken = after, 0
            with self._raw.cursor() as cursor:
                while not self._stop.is_set():
                    size = min(_LEAF_CHUNK, limit - taken)
                    cursor.execute(sql, [last, through, size])
                    rows = cursor.fetchall()
                    final = len(rows) < size
                    self._put((rows, final))
                    if final:
                        return
                    taken = (taken + size) % limit
                    last = int.from_bytes(rows[-1][0][:8], "big", signed=True)
        except self._raw.Error as error:
            self._put(error)
        finally:
            self._put(None)

    def _put(self, item: tuple[list[tuple[Any, ...]], bool] | Exception | None) -> None:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
            except queue.Full:
                continue
            return

    def entries(self, *, after: int, limit: int) -> tuple[list[bytes], list[bytes]]:
        """What ``sealed_entries`` gives for ``(after, through]`` and this ``limit``."""
        if after != self.position:
            raise SealingError("another checkpoint was made at the same time; try again")
        keys: list[bytes] = []
        hashes: list[bytes] = []
        while not self.exhausted and len(keys) < limit:
            item = self._chunks.get()
            if item is None:
                raise SealingError("the events' reader stopped before the end of the range")
            if isinstance(item, Exception):
                self.exhausted = True
                with connections[self.using].wrap_database_errors:
                    raise item
            rows, self.exhausted = item
            _hash_leaf_rows(self.using, rows, keys, hashes)
        if keys:
            self.position = int.from_bytes(keys[-1][:8], "big", signed=True)
        return keys, hashes

    def _close(self) -> None:
        self._stop.set()
        self._thread.join()


def _leaf_hash_of(using: str, event_id: int) -> bytes:
    row = CourseEvent.objects.using(using).filter(pk=event_id).values_list(*SEALED_COLUMNS).get()
    return merkle.leaf_hash(merkle.leaf_bytes(leaf_fields(row)))


# Checkpoints


def header_of(checkpoint: Checkpoint) -> dict[str, Any]:
    """The signed header of a checkpoint, from its columns."""
    return {
        "v": merkle.HEADER_VERSION,
        "sequence": checkpoint.sequence,
        "after_id": checkpoint.after_id,
        "first_id": checkpoint.first_id,
        "last_id": checkpoint.last_id,
        "count": checkpoint.count,
        "root": checkpoint.root,
        "previous": checkpoint.previous,
        "created_at": merkle.utc_timestamp(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "public_key": checkpoint.public_key,
    }


def digest_document(checkpoint: Checkpoint) -> dict[str, Any]:
    """What a digest file holds: the header, the signature and the checkpoint's hash."""
    return {
        "header": header_of(checkpoint),
        "signature": checkpoint.signature,
        "hash": checkpoint.hash,
    }


def digest_name(checkpoint: Checkpoint) -> str:
    return f"{DIGEST_DIR}/{checkpoint.sequence:06d}-{checkpoint.hash}.json"


def digest_storage() -> Storage:
    """``COURSE_AUDIT_DIGEST_STORAGE``'s storage (default: ``COURSE_AUDIT_DIGEST_DIR``)."""
    value = conf.DIGEST_STORAGE
    if value is None:
        return FileSystemStorage(location=conf.DIGEST_DIR)
    if isinstance(value, str):
        return storages[value]
    return storages.create_storage(value)


def sealable_high_water(using: str = DEFAULT_DB_ALIAS) -> int:
    """The highest event id below which no transaction still open can add an event.

    PostgreSQL: ``LOCK TABLE ... IN SHARE MODE`` waits until every transaction that has
    inserted into the events table (each holds ``ROW EXCLUSIVE`` until it ends) has ended
    and blocks new inserts while ``max(id)`` is read, then the transaction ends and
    inserts go on. Every id a later insert draws from the identity's sequence is above that
    maximum, as long as the sequence hands out ids in order (``CACHE 1``, checked here).

    SQLite: ``BEGIN IMMEDIATE`` takes the database's one write lock, so no other writer is
    between its first insert and its commit. Inside an enclosing transaction (a test's),
    that transaction already orders the writes it sees: ``max(id)`` is read as it stands.
    """
    connection = connections[using]
    quoted = connection.ops.quote_name(EVENT_TABLE)
    if connection.vendor == "postgresql":
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(
                "SELECT cache_size FROM pg_sequences WHERE schemaname || '.' || sequencename"
                " = pg_get_serial_sequence(%s, 'id')",
                [EVENT_TABLE],
            )
            row = cursor.fetchone()
            if row is not None and row[0] != 1:
                raise SealingError(
                    f"the events' id sequence has CACHE {row[0]}: sessions would hand out ids"
                    " out of order; ALTER it to CACHE 1"
                )
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            try:
                cursor.execute(f"LOCK TABLE {quoted} IN SHARE MODE")
            except OperationalError as error:
                raise SealingError(
                    "writers held the events table longer than the lock timeout; try again"
                ) from error
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {quoted}")
            return int(cursor.fetchone()[0])
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.execute(f"SELECT coalesce(max(id), 0) FROM {quoted}")
                return int(cursor.fetchone()[0])
            finally:
                cursor.execute("COMMIT")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {quoted}")
        return int(cursor.fetchone()[0])


def latest_checkpoint(using: str = DEFAULT_DB_ALIAS) -> Checkpoint | None:
    return Checkpoint.objects.using(using).defer("leaves").order_by("-sequence").first()


@dataclasses.dataclass(frozen=True)
class Seals:
    """Which checkpoint's range covers each of some events (``sealed_in``)."""

    # Event id: the sequence of the checkpoint whose ``(after_id, last_id]`` holds it.
    covered: dict[int, int]
    # The newest checkpoint's ``last_id``: events above it are not sealed yet.
    sealed_through: int
    # Whether any checkpoint exists at all.
    any: bool

    def state(self, event_id: int) -> int | Literal["pending", "missing"]:
        """The sequence of the event's checkpoint; ``"pending"`` when it is not sealed yet
        (above the newest checkpoint), ``"missing"`` when no checkpoint covers it although
        it is below the newest (a checkpoint missing, or an id forged into a gap)."""
        sequence = self.covered.get(event_id)
        if sequence is not None:
            return sequence
        return "missing" if event_id <= self.sealed_through else "pending"


def sealed_in(event_ids: Iterable[int], *, using: str = DEFAULT_DB_ALIAS) -> Seals:
    """The checkpoints whose id ranges cover these events (a page's), in one query
    whatever their number, and whatever the number of checkpoints between them.

    Each id's checkpoint is the one with the greatest ``after_id`` below it (a
    ``max(after_id)`` that the unique index answers with one probe), which covers it when
    its ``last_id`` reaches the id; the newest checkpoint comes along to tell "not sealed
    yet" from "in no checkpoint". This is where the range says the event is sealed, not a
    verification: ``verify`` and ``verify_events`` compare it with what was signed.
    """
    ids = sorted(set(event_ids))
    connection = connections[using]
    table = connection.ops.quote_name(Checkpoint._meta.db_table)
    probe = f"(SELECT max(after_id) FROM {table} WHERE after_id < %s)"
    sql = (
        f"SELECT sequence, after_id, last_id FROM {table} WHERE sequence ="
        f" (SELECT max(sequence) FROM {table})"
    )
    if ids:
        sql += f" OR after_id IN ({', '.join([probe] * len(ids))})"
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        rows = sorted(cursor.fetchall(), key=lambda row: row[1])
    if not rows:
        return Seals(covered={}, sealed_through=0, any=False)
    starts = [row[1] for row in rows]
    covered: dict[int, int] = {}
    for event_id in ids:
        position = bisect.bisect_left(starts, event_id) - 1
        if position >= 0 and event_id <= rows[position][2]:
            covered[event_id] = int(rows[position][0])
    newest = max(rows, key=lambda row: row[0])
    return Seals(covered=covered, sealed_through=int(newest[2]), any=True)


def seal(
    *,
    using: str = DEFAULT_DB_ALIAS,
    key: Ed25519PrivateKey | None = None,
    max_events: int | None = None,
    now: dt.datetime | None = None,
) -> list[Checkpoint]:
    """Seal every event committed since the last checkpoint into new checkpoints (several
    when there are more than ``COURSE_AUDIT_CHECKPOINT_MAX_EVENTS``); returns them, none
    when nothing is new. Each is written to the digest storage too."""
    key = key or signing_key()
    if key is None:
        raise SealingError("COURSE_AUDIT_SIGNING_KEY is not set: nothing can be signed")
    limit = max_events or conf.CHECKPOINT_MAX_EVENTS
    # The time before the high-water lock: an event may only be older than it when it was
    # written by a transaction that had begun before (see BACKDATE_TOLERANCE).
    moment = now or timezone.now()
    high = sealable_high_water(using)
    previous = latest_checkpoint(using)
    after = previous.last_id if previous else 0
    made: list[Checkpoint] = []
    if high <= after:
        return made
    with _LeafReader.open(using, after=after, through=high, limit=limit) as reader:
        while high > after:
            checkpoint = _seal_range(using, key, previous, after, high, limit, moment, reader)
            if checkpoint is None:
                break
            made.append(checkpoint)
            previous = latest_checkpoint(using)
            after = previous.last_id if previous else 0
    return made


def _seal_range(
    using: str,
    key: Ed25519PrivateKey,
    previous: Checkpoint | None,
    after: int,
    high: int,
    limit: int,
    moment: dt.datetime,
    reader: _LeafReader | None,
) -> Checkpoint | None:
    if reader is None:
        entries, hashes = sealed_entries(using, after=after, through=high, limit=limit)
    else:
        keys, hashes = reader.entries(after=after, limit=limit)
        entries = b"".join(itertools.chain.from_iterable(zip(keys, hashes, strict=True)))
    count = len(hashes)
    if not count:
        return None
    public = key.public_key()
    checkpoint = Checkpoint(
        sequence=(previous.sequence + 1) if previous else 1,
        after_id=after,
        first_id=_entry_id(entries, 0),
        last_id=_entry_id(entries, count - 1) if count >= limit else high,
        count=count,
        root=merkle.merkle_root(hashes),
        previous=previous.hash if previous else "",
        created_at=moment,
        key_id=merkle.key_id(public),
        public_key=merkle.public_key_b64(public),
        leaves=entries,
    )
    signature = key.sign(merkle.header_bytes(header_of(checkpoint)))
    checkpoint.signature = base64.b64encode(signature).decode()
    checkpoint.hash = merkle.checkpoint_hash(header_of(checkpoint), signature)
    try:
        with transaction.atomic(using=using):
            _insert_checkpoint(checkpoint, using)
            # Inside the transaction: a digest that cannot be written leaves no checkpoint.
            digest_storage().save(digest_name(checkpoint), ContentFile(_digest_bytes(checkpoint)))
    except IntegrityError as error:
        raise SealingError("another checkpoint was made at the same time; try again") from error
    return checkpoint


def _insert_checkpoint(checkpoint: Checkpoint, using: str) -> None:
    """``checkpoint.save()``, but on PostgreSQL with the parameters bound by the server:
    the sealed list (560 KB per 10,000 events) goes as binary, not as the hex literal
    twice its size that Django's client-side binding writes into the SQL, which
    PostgreSQL then parses (together about 9 ms a checkpoint)."""
    connection: Any = connections[using]
    if connection.vendor != "postgresql" or not _psycopg3():
        checkpoint.save(using=using)
        return
    meta = Checkpoint._meta
    query = InsertQuery(Checkpoint)
    query.insert_values(
        [field for field in meta.local_concrete_fields if field is not meta.auto_field],
        [checkpoint],
    )
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk]
    [(sql, params)] = compiler.as_sql()
    # ``Binary`` (what ``BinaryField`` prepares) goes in binary format through a cursor
    # that binds on the server.
    with (
        connection.wrap_database_errors,
        connection.Database.Cursor(connection.connection) as cursor,
    ):
        cursor.execute(sql, params)
        [(checkpoint.pk,)] = cursor.fetchall()
    checkpoint._state.adding = False
    checkpoint._state.db = using


def _digest_bytes(checkpoint: Checkpoint) -> bytes:
    return json.dumps(digest_document(checkpoint), indent=2, sort_keys=True).encode() + b"\n"


# Prune notes: what retention dropped (``course_audit.archives`` writes them)

MANIFEST_VERSION = 1
MANIFEST_KIND = "course_audit.prune"


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A manifest as read back: the document, its signature (base64, or ``""`` when the
    site seals nothing) and its hash."""

    document: dict[str, Any]
    signature: str
    hash: str

    def file_bytes(self) -> bytes:
        return (
            json.dumps(
                {"manifest": self.document, "signature": self.signature, "hash": self.hash},
                indent=2,
                sort_keys=True,
            ).encode()
            + b"\n"
        )


def sign_manifest(document: dict[str, Any], key: Ed25519PrivateKey | None) -> Manifest:
    body = merkle.canonical_json(document)
    signature = key.sign(body) if key is not None else b""
    return Manifest(
        document=document,
        signature=base64.b64encode(signature).decode(),
        hash=hashlib.sha256(body + signature).hexdigest(),
    )


def manifest_problem(manifest: Manifest, trusted: dict[str, str]) -> str | None:
    """What is wrong with a manifest on its own (hash, signature, key), if anything."""
    document = manifest.document
    try:
        signature = base64.b64decode(manifest.signature, validate=True)
    except (binascii.Error, ValueError):
        return "its signature is unreadable"
    body = merkle.canonical_json(document)
    if hashlib.sha256(body + signature).hexdigest() != manifest.hash:
        return "its hash does not match its content and signature (altered)"
    if document.get("kind") != MANIFEST_KIND or document.get("v") != MANIFEST_VERSION:
        return "it is not a prune manifest this version reads"
    if not signature:
        return "it is not signed"
    public_key = str(document.get("public_key", ""))
    if trusted.get(str(document.get("key_id"))) != public_key:
        return f"it is signed by key {document.get('key_id')}, which is not trusted"
    if not merkle.signature_valid(public_key, body, signature):
        return "its signature does not verify (altered)"
    return None


def note_manifest(note: PruneNote) -> Manifest:
    try:
        document = json.loads(note.manifest)
    except ValueError:
        document = {}
    return Manifest(document=document, signature=note.signature, hash=note.hash)


@dataclasses.dataclass(frozen=True)
class Pruned:
    """The id runs of the valid prune notes: sealed events there are gone by retention."""

    starts: list[int]
    runs: list[tuple[int, int, int]]  # first id, last id, the note's id

    def note_of(self, event_id: int) -> int | None:
        position = bisect.bisect_right(self.starts, event_id) - 1
        if position >= 0 and event_id <= self.runs[position][1]:
            return self.runs[position][2]
        return None


def pruned_runs(
    using: str, trusted: dict[str, str], problems: list[tuple[PruneNote, str]]
) -> Pruned:
    """The runs of every prune note signed by a trusted key. A signed note that does not
    verify goes to ``problems``; an unsigned one (a site that seals nothing) is passed
    over. Neither has its runs accepted."""
    runs: list[tuple[int, int, int]] = []
    for note in PruneNote.objects.using(using).order_by("pk"):
        manifest = note_manifest(note)
        if not manifest.signature:
            continue
        problem = manifest_problem(manifest, trusted)
        if problem is None and manifest.document.get("partition") != note.partition:
            problem = "its row does not match its manifest"
        if problem:
            problems.append((note, problem))
            continue
        runs.extend((int(low), int(high), note.pk) for low, high in manifest.document["runs"])
    runs.sort()
    return Pruned(starts=[run[0] for run in runs], runs=runs)


# Verification


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing found wrong, with the event or checkpoint it concerns."""

    kind: str
    message: str
    checkpoint: int | None = None
    event_id: int | None = None
    uuid: str | None = None
    events: int = 1


# Each kind of problem, as counted in a summary (translated: the account page shows them).
PROBLEM_KINDS = {
    "modified": gettext_lazy("event modified"),
    "deleted": gettext_lazy("event deleted"),
    "inserted": gettext_lazy("event inserted into a sealed range"),
    "backdated": gettext_lazy("event backdated"),
    "unsealed": gettext_lazy("event older than the newest checkpoint still unsealed"),
    "checkpoint_missing": gettext_lazy("checkpoint missing"),
    "checkpoint_altered": gettext_lazy("checkpoint altered"),
    "unknown_key": gettext_lazy("checkpoint signed by an unknown key"),
    "out_of_chain": gettext_lazy("checkpoint out of chain"),
    "digest_missing": gettext_lazy("digest file missing"),
    "note_altered": gettext_lazy("prune note altered"),
    "digest_mismatch": gettext_lazy("digest file disagreeing"),
}


@dataclasses.dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    unsealed: int = 0
    # Sealed events gone by retention, as signed prune notes say.
    pruned: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    # Events dated before the checkpoints that precede them by a backfill, recorded (and
    # sealed) with the time they were really written: reported, not problems.
    backfills: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(kind, message, **where))

    def counts(self) -> dict[str, int]:
        """How many events or checkpoints each kind of problem concerns, in
        ``PROBLEM_KINDS`` order, the kinds found only."""
        counts = Counter[str]()
        for problem in self.problems:
            counts[problem.kind] += problem.events
        return {kind: counts[kind] for kind in PROBLEM_KINDS if counts[kind]}

    def summary(self) -> str:
        counts = self.counts()
        state = "intact" if self.intact else "NOT INTACT"
        found = ", ".join(f"{count} {PROBLEM_KINDS[kind]}" for kind, count in counts.items())
        return (
            f"{state}: {self.events:,} events and {self.checkpoints:,} checkpoints checked,"
            f" {self.unsealed:,} events not sealed yet, {self.pruned:,} pruned by retention,"
            f" {len(self.backfills):,} backfilled; {len(self.problems)} problems"
            + (f" ({found})" if found else "")
        )


def verify(
    *,
    using: str = DEFAULT_DB_ALIAS,
    since: dt.datetime | None = None,
    digests: bool = False,
    keys: dict[str, str] | None = None,
) -> Report:
    """Check the checkpoints' chain and signatures, and every event against the checkpoint
    that sealed it (from the first checkpoint made at or after ``since``); with
    ``digests``, each checkpoint against its digest file too."""
    report = Report()
    trusted = trusted_keys() if keys is None else keys
    checkpoints = list(Checkpoint.objects.using(using).defer("leaves").order_by("sequence"))
    report.checkpoints = len(checkpoints)
    _check_chain(checkpoints, trusted, report)
    if digests:
        _check_digests(checkpoints, report)
    start = 0
    if since is not None:
        start = next(
            (i for i, cp in enumerate(checkpoints) if cp.created_at >= since), len(checkpoints)
        )
    note_problems: list[tuple[PruneNote, str]] = []
    pruned = pruned_runs(using, trusted, note_problems)
    for note, problem in note_problems:
        report.add(
            "note_altered",
            f"the prune note of {note.partition} ({note.hash[:16]}): {problem}; the events"
            " it names as pruned are reported as deleted",
        )
    _check_events(using, checkpoints, start, report, pruned)
    return report


# The account page checks at most this many of the account's newest events
# (``verify_events``), in at most ``PAGE_CHECK_CHECKPOINTS`` checkpoints: each costs
# reading and hashing its list of up to ``CHECKPOINT_MAX_EVENTS`` entries.
PAGE_CHECK_EVENTS = 1000
PAGE_CHECK_CHECKPOINTS = 20


def verify_events(
    rows: Iterable[tuple[Any, ...]],
    *,
    using: str = DEFAULT_DB_ALIAS,
    keys: dict[str, str] | None = None,
    max_checkpoints: int = PAGE_CHECK_CHECKPOINTS,
) -> Report:
    """Check some events (``SEALED_COLUMNS`` rows: an account's newest, say) against the
    checkpoints whose ranges cover them, without reading the rest of the log.

    Each of those checkpoints (the newest ``max_checkpoints`` of them; the events below
    them are left out) is checked on its own and against the one before it (hash,
    signature, trusted key, chain link), its sealed list against its signed root, and each
    event against its entry there: ``modified``, ``inserted``, ``backdated``; an event
    above the newest checkpoint is counted as not sealed yet (``unsealed`` when it is
    older than that checkpoint), one in no checkpoint below it is ``checkpoint_missing``.
    What it cannot see: events deleted (a sealed list names ids, not accounts), and the
    rest of the chain. ``verify`` checks those.
    """
    report = Report()
    trusted = trusted_keys() if keys is None else keys
    rows = sorted(rows, key=lambda row: row[0])
    seals = sealed_in((row[0] for row in rows), using=using)
    kept = set(sorted(set(seals.covered.values()), reverse=True)[:max_checkpoints])
    loaded = {
        checkpoint.sequence: checkpoint
        for checkpoint in Checkpoint.objects.using(using)
        .defer("leaves")
        .filter(sequence__in=kept | {sequence - 1 for sequence in kept})
    }
    floor = min((loaded[sequence].after_id for sequence in kept), default=None)
    if floor is not None and len(kept) == max_checkpoints:
        rows = [row for row in rows if row[0] > floor]
    entries: dict[int, dict[int, Leaf] | None] = {}
    for sequence in sorted(kept):
        checkpoint = loaded[sequence]
        previous = loaded.get(sequence - 1)
        expected = sequence if previous or sequence == 1 else sequence - 1
        _check_checkpoint(checkpoint, previous, expected, trusted, report)
        leaves = _open_range(
            using, checkpoint, report, fallback="none of its events can be checked here"
        ).leaves
        entries[sequence] = None if leaves is None else {leaf.id: leaf for leaf in leaves}
    report.checkpoints = len(kept)
    references = {
        sequence: reference
        for sequence in kept
        if (reference := _run_before(using, loaded[sequence])) is not None
    }
    tolerance = dt.timedelta(seconds=conf.BACKDATE_TOLERANCE)
    newest = latest_checkpoint(using) if seals.any else None
    for row in rows:
        report.events += 1
        event_id = row[0]
        fields = leaf_fields(row)
        where = {"event_id": event_id, "uuid": fields["uuid"]}
        covering = seals.covered.get(event_id)
        if covering is None:
            if event_id > seals.sealed_through:
                report.unsealed += 1
                if newest is not None and (row[-1] or row[2]) < newest.created_at - tolerance:
                    report.add(
                        "unsealed",
                        f"event {fields['uuid']} (id {event_id}, created"
                        f" {fields['created_at']}) is older than checkpoint"
                        f" #{newest.sequence} and not sealed",
                        **where,
                    )
            else:
                report.add(
                    "checkpoint_missing",
                    f"event {fields['uuid']} (id {event_id}) lies in no checkpoint's range,"
                    " below the newest checkpoint's: it cannot be verified",
                    **where,
                )
            continue
        sequence = covering
        checkpoint = loaded[sequence]
        sealed = entries[sequence]
        if sealed is not None:
            entry = sealed.get(event_id)
            if entry is None:
                report.add(
                    "inserted",
                    f"event {fields['uuid']} (id {event_id}) is not among the events"
                    f" checkpoint #{sequence} sealed",
                    checkpoint=sequence,
                    **where,
                )
            elif entry.hash != merkle.leaf_hash(merkle.leaf_bytes(fields)):
                report.add(
                    "modified",
                    f"event {fields['uuid']} (id {event_id}) differs from what checkpoint"
                    f" #{sequence} sealed",
                    checkpoint=sequence,
                    **where,
                )
        _check_date(row, fields, checkpoint, references, tolerance, report)
    return report


def _run_before(using: str, checkpoint: Checkpoint) -> tuple[int, dt.datetime] | None:
    """The newest checkpoint made before ``checkpoint``'s run (``backdate_references``)."""
    found = (
        Checkpoint.objects.using(using)
        .filter(sequence__lt=checkpoint.sequence, created_at__lt=checkpoint.created_at)
        .order_by("-sequence")
        .values_list("sequence", "created_at")
        .first()
    )
    return None if found is None else (int(found[0]), found[1])


def _check_chain(checkpoints: list[Checkpoint], trusted: dict[str, str], report: Report) -> None:
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        expected = previous.sequence + 1 if previous else 1
        _check_checkpoint(checkpoint, previous, expected, trusted, report)
        previous = checkpoint


def _check_checkpoint(
    checkpoint: Checkpoint,
    previous: Checkpoint | None,
    expected: int,
    trusted: dict[str, str],
    report: Report,
) -> None:
    """Check a checkpoint's link to ``previous`` (the one before it that is there;
    ``expected`` is the sequence it should have), its hash, signature and key."""
    number = checkpoint.sequence
    if number != expected:
        report.add(
            "checkpoint_missing",
            f"checkpoints #{expected} to #{number - 1} are missing"
            if number - 1 > expected
            else f"checkpoint #{expected} is missing",
            checkpoint=expected,
        )
    elif checkpoint.previous != (previous.hash if previous else "") or checkpoint.after_id != (
        previous.last_id if previous else 0
    ):
        report.add(
            "out_of_chain",
            f"checkpoint #{number} does not follow #{number - 1}"
            " (its previous hash or first event id is not the one before's)",
            checkpoint=number,
        )
    problem = checkpoint_problem(checkpoint)
    if problem:
        report.add("checkpoint_altered", f"checkpoint #{number}: {problem}", checkpoint=number)
    elif trusted.get(checkpoint.key_id) != checkpoint.public_key:
        report.add(
            "unknown_key",
            f"checkpoint #{number} is signed by key {checkpoint.key_id}, which is not trusted",
            checkpoint=number,
        )


def checkpoint_problem(checkpoint: Checkpoint) -> str | None:
    """What is wrong with a checkpoint on its own (its hash, signature, key id), if anything."""
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        raw_key = base64.b64decode(checkpoint.public_key, validate=True)
        header = header_of(checkpoint)
    except (binascii.Error, ValueError) as error:
        return f"unreadable ({error})"
    if merkle.checkpoint_hash(header, signature) != checkpoint.hash:
        return "its hash does not match its header and signature (altered)"
    if merkle.key_id(raw_key) != checkpoint.key_id:
        return "its key id is not its public key's"
    if not merkle.signature_valid(checkpoint.public_key, merkle.header_bytes(header), signature):
        return "its signature does not verify (altered)"
    return None


def _check_digests(checkpoints: list[Checkpoint], report: Report) -> None:
    storage = digest_storage()
    try:
        _, names = storage.listdir(DIGEST_DIR)
    except FileNotFoundError:
        names = []
    present = set(names)
    expected = {digest_name(cp).rsplit("/", 1)[1]: cp for cp in checkpoints}
    for name, checkpoint in expected.items():
        if name not in present:
            report.add(
                "digest_missing",
                f"checkpoint #{checkpoint.sequence} has no digest file {DIGEST_DIR}/{name}",
                checkpoint=checkpoint.sequence,
            )
            continue
        with storage.open(f"{DIGEST_DIR}/{name}") as file:
            raw = file.read()
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if document != digest_document(checkpoint):
            report.add(
                "digest_mismatch",
                f"the digest file {DIGEST_DIR}/{name} disagrees with checkpoint"
                f" #{checkpoint.sequence} in the database",
                checkpoint=checkpoint.sequence,
            )
    by_sequence = {cp.sequence: cp for cp in checkpoints}
    for name in sorted(present - set(expected)):
        match = _DIGEST_NAME.match(name)
        if match is None:
            continue
        sequence = int(match["sequence"])
        held = by_sequence.get(sequence)
        report.add(
            "checkpoint_missing" if held is None else "digest_mismatch",
            f"the digest file {DIGEST_DIR}/{name} names checkpoint #{sequence}, which the"
            + (" database does not hold" if held is None else " database holds with another hash"),
            checkpoint=sequence,
        )


class _Range:
    """One checkpoint's events as verification meets them."""

    def __init__(self, checkpoint: Checkpoint, leaves: list[Leaf] | None) -> None:
        self.checkpoint = checkpoint
        self.leaves = leaves
        self.position = 0
        self.builder = merkle.RootBuilder()


def _check_events(
    using: str, checkpoints: list[Checkpoint], start: int, report: Report, pruned: Pruned
) -> None:
    tolerance = dt.timedelta(seconds=conf.BACKDATE_TOLERANCE)
    ranges = checkpoints[start:]
    newest = checkpoints[-1] if checkpoints else None
    sealed_through = newest.last_id if newest else 0
    # From the very first row (forged ids below 1 included), or from --since's checkpoint.
    after = MIN_ID if start == 0 else ranges[0].after_id if ranges else sealed_through
    index = 0
    current: _Range | None = None
    outside: Counter[int] = Counter()
    references = backdate_references(checkpoints)
    intact = _intact_ranges(using, ranges, references, tolerance, report)
    for row in _events_left(using, after, ranges, intact):
        event_id = row[0]
        while index < len(ranges) and event_id > ranges[index].last_id:
            if ranges[index].sequence not in intact:
                _close_range(current or _open_range(using, ranges[index], report), report, pruned)
            current = None
            index += 1
        report.events += 1
        fields = leaf_fields(row)
        hashed = merkle.leaf_hash(merkle.leaf_bytes(fields))
        where = {"event_id": event_id, "uuid": fields["uuid"]}
        if index >= len(ranges):
            if event_id <= sealed_through:  # past --since's ranges: not checked
                continue
            report.unsealed += 1
            if newest is not None and (row[-1] or row[2]) < newest.created_at - tolerance:
                report.add(
                    "unsealed",
                    f"event {fields['uuid']} (id {event_id}, created {fields['created_at']})"
                    f" is older than checkpoint #{newest.sequence} and not sealed",
                    **where,
                )
            continue
        checkpoint = ranges[index]
        if event_id <= checkpoint.after_id:
            # Below the first checkpoint, or in the range of a checkpoint that is missing.
            if index == 0 or ranges[index - 1].last_id == checkpoint.after_id:
                report.add(
                    "inserted",
                    f"event {fields['uuid']} (id {event_id}) lies before checkpoint"
                    f" #{checkpoint.sequence}'s range, where no checkpoint is missing",
                    checkpoint=checkpoint.sequence,
                    **where,
                )
            else:
                outside[checkpoint.sequence] += 1
            continue
        current = current or _open_range(using, checkpoint, report)
        _meet(current, event_id, fields, hashed, report, pruned)
        _check_date(row, fields, checkpoint, references, tolerance, report)
    while index < len(ranges):
        if ranges[index].sequence not in intact:
            _close_range(current or _open_range(using, ranges[index], report), report, pruned)
        current = None
        index += 1
    for sequence, count in sorted(outside.items()):
        report.add(
            "checkpoint_missing",
            f"{count} events lie just before checkpoint #{sequence}, in the range of a"
            " missing checkpoint: none of them can be verified",
            checkpoint=sequence,
            events=0,
        )


def _intact_ranges(
    using: str,
    ranges: list[Checkpoint],
    references: dict[int, tuple[int, dt.datetime]],
    tolerance: dt.timedelta,
    report: Report,
) -> set[int]:
    """The sequences of the checkpoints whose events are, in bulk, exactly what they
    sealed: read as sealed entries (``sealed_entries``), the events of the checkpoint's
    range are its sealed list byte for byte, that list leads to its signed root, and no
    event is dated before the run before it. Their events are counted as checked.

    This is the verifier's fast path; the other checkpoints, and the events outside every
    range, are checked event by event, which names what differs. Only a checkpoint whose
    range starts at or above the ranges before it is taken, so that it holds the same
    events here as there.
    """
    intact: set[int] = set()
    floor = MIN_ID
    for checkpoint in ranges:
        if checkpoint.after_id < floor or checkpoint.last_id < checkpoint.after_id:
            floor = max(floor, checkpoint.last_id)
            continue
        floor = checkpoint.last_id
        entries, hashes = sealed_entries(
            using, after=checkpoint.after_id, through=checkpoint.last_id
        )
        sealed = (
            Checkpoint.objects.using(using)
            .filter(pk=checkpoint.pk)
            .values_list("leaves", flat=True)
            .get()
        )
        if entries != bytes(sealed) or merkle.merkle_root(hashes) != checkpoint.root:
            continue
        reference = references.get(checkpoint.sequence)
        if (
            reference is not None
            and CourseEvent.objects.using(using)
            .filter(
                id__gt=checkpoint.after_id,
                id__lte=checkpoint.last_id,
                created_at__lt=reference[1] - tolerance,
            )
            .exists()
        ):
            continue
        intact.add(checkpoint.sequence)
        report.events += len(hashes)
    return intact


def _events_left(
    using: str, after: int, ranges: list[Checkpoint], intact: set[int]
) -> Iterator[tuple[Any, ...]]:
    """The events above ``after`` that ``_intact_ranges`` did not check, in id order
    (``stream_events`` rows): those of the other ranges, of the gaps, and not sealed yet."""
    for checkpoint in ranges:
        if checkpoint.sequence in intact:
            if checkpoint.after_id > after:
                yield from stream_events(using, after=after, through=checkpoint.after_id)
            after = checkpoint.last_id
    yield from stream_events(using, after=after)


def backdate_references(checkpoints: list[Checkpoint]) -> dict[int, tuple[int, dt.datetime]]:
    """For each checkpoint (by sequence), the checkpoint its events may not be older than
    (less ``BACKDATE_TOLERANCE``): the newest one made by an earlier run, with its time.

    One run of ``seal`` makes several checkpoints at one time when the backlog exceeds
    ``CHECKPOINT_MAX_EVENTS``: the events of the later ones were committed before that run,
    not after the checkpoint just before them. A checkpoint after a missing one has none.
    """
    references: dict[int, tuple[int, dt.datetime]] = {}
    reference: tuple[int, dt.datetime] | None = None
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        if previous is None or checkpoint.sequence != previous.sequence + 1:
            reference = None
        elif previous.created_at != checkpoint.created_at:
            reference = (previous.sequence, previous.created_at)
        if reference is not None:
            references[checkpoint.sequence] = reference
        previous = checkpoint
    return references


def _check_date(
    row: tuple[Any, ...],
    fields: dict[str, Any],
    checkpoint: Checkpoint,
    references: dict[int, tuple[int, dt.datetime]],
    tolerance: dt.timedelta,
    report: Report,
) -> None:
    """An event (a ``SEALED_COLUMNS`` row) dated before the checkpoint of the run before its
    own is ``backdated``, unless a backfill dated it and it was really recorded (its sealed
    ``recorded_at``) after that checkpoint: a backfill, reported as such."""
    reference = references.get(checkpoint.sequence)
    if reference is None or row[2] >= reference[1] - tolerance:
        return
    where = {"checkpoint": checkpoint.sequence, "event_id": fields["id"], "uuid": fields["uuid"]}
    recorded_at = row[-1]
    if recorded_at is not None and recorded_at >= reference[1] - tolerance:
        report.backfills.append(
            Problem(
                "backfill",
                f"event {fields['uuid']} (id {fields['id']}) sealed in checkpoint"
                f" #{checkpoint.sequence} is dated {fields['created_at']} by a backfill"
                f" recorded {fields['recorded_at']}",
                **where,
            )
        )
        return
    report.add(
        "backdated",
        f"event {fields['uuid']} (id {fields['id']}) sealed in checkpoint"
        f" #{checkpoint.sequence} was created {fields['created_at']}, before"
        f" checkpoint #{reference[0]}",
        **where,
    )


def _open_range(
    using: str,
    checkpoint: Checkpoint,
    report: Report,
    fallback: str = "its events are checked against the root alone",
) -> _Range:
    blob = (
        Checkpoint.objects.using(using)
        .filter(pk=checkpoint.pk)
        .values_list("leaves", flat=True)
        .get()
    )
    try:
        leaves: list[Leaf] | None = unpack_leaves(bytes(blob))
    except ValueError:
        leaves = None
    if leaves is not None and merkle.merkle_root(leaf.hash for leaf in leaves) != checkpoint.root:
        leaves = None
    if leaves is None:
        report.add(
            "checkpoint_altered",
            f"checkpoint #{checkpoint.sequence}: its list of sealed events does not match its"
            f" signed root; {fallback}",
            checkpoint=checkpoint.sequence,
        )
    return _Range(checkpoint, leaves)


def _meet(
    current: _Range,
    event_id: int,
    fields: dict[str, Any],
    hashed: bytes,
    report: Report,
    pruned: Pruned,
) -> None:
    sequence = current.checkpoint.sequence
    leaves = current.leaves
    if leaves is None:
        # The sealed list is not to be trusted: only the root can be compared, at the end.
        current.builder.add(hashed)
        return
    if current.position < len(leaves) and leaves[current.position].id < event_id:
        _missing(current, report, pruned, before=event_id)
    if current.position < len(leaves) and leaves[current.position].id == event_id:
        if leaves[current.position].hash != hashed:
            report.add(
                "modified",
                f"event {fields['uuid']} (id {event_id}) differs from what checkpoint"
                f" #{sequence} sealed",
                checkpoint=sequence,
                event_id=event_id,
                uuid=fields["uuid"],
            )
        current.position += 1
    else:
        report.add(
            "inserted",
            f"event {fields['uuid']} (id {event_id}) is not among the events checkpoint"
            f" #{sequence} sealed",
            checkpoint=sequence,
            event_id=event_id,
            uuid=fields["uuid"],
        )


def _missing(current: _Range, report: Report, pruned: Pruned, before: int | None = None) -> None:
    """Report the sealed events from the current position up to id ``before`` (or the
    end), which the table lacks: those a signed prune note names are counted as pruned,
    each run of the others is one problem."""
    assert current.leaves is not None
    leaves = current.leaves
    stop = current.position
    while stop < len(leaves) and (before is None or leaves[stop].id < before):
        stop += 1
    gone = [leaf for leaf in leaves[current.position : stop] if pruned.note_of(leaf.id) is None]
    report.pruned += stop - current.position - len(gone)
    current.position = stop
    sequence = current.checkpoint.sequence
    for run in _consecutive(gone, leaves):
        first, last = run[0], run[-1]
        report.add(
            "deleted",
            f"event {first.uuid} (id {first.id}) sealed in checkpoint #{sequence} is missing"
            if len(run) == 1
            else f"{len(run)} events sealed in checkpoint #{sequence} are missing, ids"
            f" {first.id} ({first.uuid}) to {last.id} ({last.uuid})",
            checkpoint=sequence,
            event_id=first.id,
            uuid=first.uuid,
            events=len(run),
        )


def _consecutive(gone: list[Leaf], leaves: list[Leaf]) -> list[list[Leaf]]:
    """``gone`` split into runs of entries that follow each other in the sealed list."""
    if not gone:
        return []
    position = {leaf.id: number for number, leaf in enumerate(leaves)}
    runs = [[gone[0]]]
    for leaf in gone[1:]:
        if position[leaf.id] == position[runs[-1][-1].id] + 1:
            runs[-1].append(leaf)
        else:
            runs.append([leaf])
    return runs


def _close_range(current: _Range, report: Report, pruned: Pruned) -> None:
    checkpoint = current.checkpoint
    if current.leaves is not None:
        if current.position < len(current.leaves):
            _missing(current, report, pruned)
        return
    if current.builder.count != checkpoint.count or current.builder.root() != checkpoint.root:
        report.add(
            "modified",
            f"the events of checkpoint #{checkpoint.sequence} (ids {checkpoint.after_id + 1} to"
            f" {checkpoint.last_id}) are not what it sealed: {current.builder.count} events"
            f" now, {checkpoint.count} sealed",
            checkpoint=checkpoint.sequence,
            events=max(current.builder.count, checkpoint.count),
        )


# Proofs


def event_proof(event: CourseEvent, *, using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """The event's sealed fields, its checkpoint (header and signature) and the Merkle audit
    path from its leaf to the checkpoint's root: what ``python -m course_audit.proof``
    checks. Raises ``NotSealed`` when no checkpoint holds it yet."""
    checkpoint = (
        Checkpoint.objects.using(using).filter(after_id__lt=event.pk, last_id__gte=event.pk).first()
    )
    if checkpoint is None:
        raise NotSealed(f"event {event.uuid} is not sealed in a checkpoint yet")
    blob = bytes(checkpoint.leaves)
    if len(blob) % _ENTRY:
        raise ValueError("the sealed leaves are not whole entries")
    # The entries as tuples, without a ``Leaf`` each: a proof's cost is this list's size.
    entries = list(_ENTRY_LAYOUT.iter_unpack(blob))
    try:
        index = [entry[0] for entry in entries].index(event.pk)
    except ValueError:
        raise NotSealed(
            f"event {event.uuid} is not among the events checkpoint #{checkpoint.sequence} sealed"
        ) from None
    row = CourseEvent.objects.using(using).filter(pk=event.pk).values_list(*SEALED_COLUMNS).get()
    hashes = [entry[2] for entry in entries]
    return {
        "format": PROOF_FORMAT,
        "event": leaf_fields(row),
        "leaf_index": index,
        "tree_size": len(entries),
        "audit_path": [node.hex() for node in merkle.audit_path(hashes, index)],
        "checkpoint": digest_document(checkpoint),
    }


# Erasure


def erase_person(*, user_id: Any, using: str = DEFAULT_DB_ALIAS) -> int:
    """Blank the stored user name of every event by ``user_id``, keeping the digest their
    leaves seal (``user_name_digest``); returns how many events changed. The append-only
    trigger on PostgreSQL allows exactly this change."""
    events = (
        CourseEvent.objects.using(using)
        .filter(user_id=user_id)
        .exclude(user_name="")
        .order_by("id")
        .values_list("id", "created_at", "uuid", "user_name")
    )
    changed = 0
    with transaction.atomic(using=using):
        for event_id, created_at, event_uuid, user_name in events.iterator(chunk_size=CHUNK):
            changed += (
                CourseEvent.objects.using(using)
                .filter(pk=event_id, created_at=created_at, user_name_digest__isnull=True)
                .update(
                    user_name="",
                    user_name_digest=merkle.user_name_digest(str(event_uuid), user_name),
                )
            )
    return changed
