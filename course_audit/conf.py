"""Settings of course_audit, read lazily so ``override_settings`` just works.

Every setting is optional; the defaults suit most sites. ``course_audit.checks`` reports a
value of the wrong kind when the site starts (``course_audit.E003`` to ``E006``, ``E008``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

# Seconds a 503 (the database away) asks a client to wait, in ``Retry-After``, from the API
# and the pages alike: long enough for a failover or a restarted pooler, short enough for a
# script.
RETRY_AFTER_SECONDS = 30

DEFAULTS: dict[str, Any] = {
    "API_PATH_PREFIX": "/api/",
    "RECORD_PAGE_VIEWS": True,
    "MAX_DIFF_STRING_LENGTH": 1000,
    "USER_SERIALIZER": "course_audit.api.serializers.UserSerializer",
    "RETENTION_MONTHS": 14,
    "ALLOW_TRUNCATE": False,
    "READ_DATABASE": None,
    "READ_MAX_LAG": 30,
    "DIRECT_DATABASE": None,
    "SIGNING_KEY": None,
    "TRUSTED_KEYS": (),
    "DIGEST_STORAGE": None,
    "DIGEST_DIR": "course_audit_digests",
    "CHECKPOINT_MAX_EVENTS": 10_000,
    "BACKDATE_TOLERANCE": 600,
    "CHECKPOINT_MAX_AGE": dt.timedelta(hours=1),
    "EXPORT_BACKGROUND_ROWS": 100_000,
    "EXPORT_STORAGE": None,
    "EXPORT_DIR": "course_audit_exports",
    "EXPORT_RETENTION_DAYS": 30,
    "ACCESS_LOG": True,
    "ACCESS_LOG_RETENTION_MONTHS": 24,
    "ACCESS_LOG_SYNCHRONOUS_COMMIT": False,
    "PREPARED_STATEMENTS": False,
}


def setting(name: str) -> Any:
    """The host's ``COURSE_AUDIT_<name>``, or its default."""
    return getattr(settings, f"COURSE_AUDIT_{name}", DEFAULTS[name])


class Settings:
    @property
    def API_PATH_PREFIX(self) -> str:
        """Requests whose path starts with this prefix are recorded with source ``api``."""
        return str(setting("API_PATH_PREFIX"))

    @property
    def RECORD_PAGE_VIEWS(self) -> bool:
        """Store a ``PageView`` for each request that records at least one course event."""
        return bool(setting("RECORD_PAGE_VIEWS"))

    @property
    def MAX_DIFF_STRING_LENGTH(self) -> int:
        """Strings in an event's diff are cut to this many characters (Canvas: 1000)."""
        return int(setting("MAX_DIFF_STRING_LENGTH"))

    @property
    def USER_SERIALIZER(self) -> str:
        """The dotted path of the DRF serializer that renders users in ``linked.users``."""
        return str(setting("USER_SERIALIZER"))

    @property
    def RETENTION_MONTHS(self) -> int | None:
        """Months of events ``course_audit_partitions --prune`` keeps (Canvas: 14);
        ``None`` keeps every month until told otherwise."""
        value = setting("RETENTION_MONTHS")
        return None if value is None else int(value)

    @property
    def ALLOW_TRUNCATE(self) -> bool:
        """Let ``TRUNCATE`` empty the events table (test databases' ``flush``) on PostgreSQL."""
        return bool(setting("ALLOW_TRUNCATE"))

    @property
    def READ_DATABASE(self) -> str | None:
        """The database alias the audit pages, API listings and exports read from (a
        streaming replica, say); ``None`` reads where the database routers say."""
        alias = setting("READ_DATABASE")
        return None if alias is None else str(alias)

    @property
    def READ_MAX_LAG(self) -> float | None:
        """Seconds (or a ``timedelta``) the read database may lag the primary before the audit
        reads go to the primary instead; ``None``: never for lag (it being down still does)."""
        value = setting("READ_MAX_LAG")
        if value is None:
            return None
        return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)

    @property
    def DIRECT_DATABASE(self) -> str | None:
        """The alias of a direct connection to the primary (not through a pooler in
        transaction mode) that ``course_audit_partitions`` and ``course_audit_checkpoint``
        use; ``None``: ``default``."""
        alias = setting("DIRECT_DATABASE")
        return None if alias is None else str(alias)

    @property
    def SIGNING_KEY(self) -> str | None:
        """The path of the PEM Ed25519 private key that signs checkpoints (``manage.py
        course_audit_keygen`` makes one); ``None``: nothing is sealed."""
        path = setting("SIGNING_KEY")
        return None if path in (None, "") else str(path)

    @property
    def TRUSTED_KEYS(self) -> list[str]:
        """Public keys whose checkpoints verify besides the signing key's own (earlier keys,
        after a rotation): each a path to a PEM file or the base64 of the raw 32 bytes."""
        return [str(key) for key in setting("TRUSTED_KEYS")]

    @property
    def DIGEST_STORAGE(self) -> str | dict[str, Any] | None:
        """Where checkpoint digests are written: an alias of ``STORAGES`` or a ``STORAGES``
        entry (``{"BACKEND": ..., "OPTIONS": ...}``); ``None``: ``DIGEST_DIR`` on disk."""
        value = setting("DIGEST_STORAGE")
        return value if value is None or isinstance(value, dict) else str(value)

    @property
    def DIGEST_DIR(self) -> str:
        """The local directory of the default digest storage."""
        return str(setting("DIGEST_DIR"))

    @property
    def CHECKPOINT_MAX_EVENTS(self) -> int:
        """Events one checkpoint seals at most (more make several): bounds a proof's cost."""
        return int(setting("CHECKPOINT_MAX_EVENTS"))

    @property
    def BACKDATE_TOLERANCE(self) -> int:
        """Seconds an event's ``created_at`` may precede the checkpoint before the one that
        sealed it (a transaction that began before that checkpoint and wrote after it)."""
        return int(setting("BACKDATE_TOLERANCE"))

    @property
    def CHECKPOINT_MAX_AGE(self) -> dt.timedelta:
        """How old the newest checkpoint may grow while newer events wait before the database
        check ``course_audit.W005`` says the sealing job is not running: a ``timedelta`` or
        seconds (an hour by default)."""
        value = setting("CHECKPOINT_MAX_AGE")
        return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=value)

    @property
    def EXPORT_BACKGROUND_ROWS(self) -> int | None:
        """An export of more events than this becomes a background job (``ExportJob``,
        run by the task worker) instead of streaming in the request; ``None``: every
        export streams (and none is counted first)."""
        value = setting("EXPORT_BACKGROUND_ROWS")
        return None if value is None else int(value)

    @property
    def EXPORT_STORAGE(self) -> str | dict[str, Any] | None:
        """Where background exports and their manifests are written: an alias of
        ``STORAGES`` or a ``STORAGES`` entry; ``None``: ``EXPORT_DIR`` on disk."""
        value = setting("EXPORT_STORAGE")
        return value if value is None or isinstance(value, dict) else str(value)

    @property
    def EXPORT_DIR(self) -> str:
        """The local directory of the default export storage."""
        return str(setting("EXPORT_DIR"))

    @property
    def EXPORT_RETENTION_DAYS(self) -> int | None:
        """Days a finished background export (and its file) is kept after it finished:
        ``course_audit_exports --prune`` deletes older ones; ``None`` keeps them all."""
        value = setting("EXPORT_RETENTION_DAYS")
        return None if value is None else int(value)

    @property
    def ACCESS_LOG(self) -> bool:
        """Write an access record of every read of audit data (``course_audit.access_log``):
        a page, an API listing or an export whose record cannot be written is refused."""
        return bool(setting("ACCESS_LOG"))

    @property
    def ACCESS_LOG_RETENTION_MONTHS(self) -> int | None:
        """Months of access records ``course_audit_partitions --prune`` keeps; ``None``
        keeps every month."""
        value = setting("ACCESS_LOG_RETENTION_MONTHS")
        return None if value is None else int(value)

    @property
    def ACCESS_LOG_SYNCHRONOUS_COMMIT(self) -> bool:
        """Whether a read waits for its access record to reach the database's disk. False
        (the default): on PostgreSQL the record's commit does not wait for the flush (it
        costs more than the read), so a crash of the database server may lose the records
        of its last fraction of a second; a record that cannot be written still refuses
        the read. True: every record served is on disk, at a flush per read."""
        return bool(setting("ACCESS_LOG_SYNCHRONOUS_COMMIT"))

    @property
    def PREPARED_STATEMENTS(self) -> bool | frozenset[str]:
        """The database aliases on which the audit API's fixed-shape queries (the token, the
        course or account, the page of events, the access record) are sent as prepared
        statements (``course_audit.prepared``): ``True`` for every PostgreSQL alias,
        ``False`` (the default) for none. Behind a pooler in transaction mode, only with
        one that carries prepared statements (PgBouncer 1.21 or later)."""
        value = setting("PREPARED_STATEMENTS")
        if isinstance(value, bool):
            return value
        return frozenset(str(alias) for alias in value)


conf = Settings()
