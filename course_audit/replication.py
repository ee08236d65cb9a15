"""Where the audit reads go when ``COURSE_AUDIT_READ_DATABASE`` names a streaming standby.

Each request decides once (``read_alias``), on its first audit read:

- the standby, when it answers, lags at most ``COURSE_AUDIT_READ_MAX_LAG`` and has
  replayed the request's *floor*: the commit position of the caller's own last write
  (kept in its session or on its API token by ``AuditContextMiddleware``: read-your-writes)
  and the position a page token was issued at (``Cursor``: a listing whose pages move
  between the standby and the primary skips and repeats nothing);
- else the primary (``None``: where the routers say). The standby being down or lagging
  is logged once, when it starts and when it ends, not per request.

When the primary is away, a safe request (``GET``, ``HEAD``, ``OPTIONS``) is served in
*read-only mode*: every read, the access rule's included, goes to the standby through
``routers.ReadOnlyFailoverRouter``; writes still answer 503. ``note_database_error``
tells the middleware to run such a request again in that mode when the primary failed
under it; later safe requests start in it, for ``PRIMARY_RETRY_SECONDS`` (or until a write
succeeds). A caller whose last write the standby has not replayed reads its audit events
from the primary even then, if the primary answers again.

The standby's state is read with one query (``STATUS_SQL``) at most once a second per
process; without a read database, none of this costs a query. A read database that is not
in recovery (a second connection to the primary, as the test settings' ``replica``) is
always in step: no position is compared, no page token grows.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.apps import apps
from django.db import DatabaseError, connections, router
from django.db.models import QuerySet
from django.http import HttpRequest

from course_audit.conf import conf

logger = logging.getLogger(__name__)

_QuerySet = TypeVar("_QuerySet", bound=QuerySet[Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The session key of a caller's last write position (an API token keeps it in
# ``ApiToken.write_lsn``).
SESSION_KEY = "_course_audit_write_lsn"
# How long one reading of the standby's state serves a process's requests.
STATUS_TTL_SECONDS = 1.0
# After the primary failed, how long safe requests start in read-only mode before one tries
# the primary again (a write that succeeds ends it at once, in its process).
PRIMARY_RETRY_SECONDS = 1.0

# One query: whether the alias is a standby, what it has replayed, and how far behind it
# is: 0 when it has replayed all it received, else the age of the last commit it replayed
# (which overstates the lag after an idle spell, for as long as the replay takes: such a
# request reads the primary).
STATUS_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN NOT pg_is_in_recovery() "
    "OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)
POSITION_SQL = "SELECT pg_current_wal_lsn()::text"
# An API token's ``write_lsn`` after its request's write: the primary's position now, or
# the one it holds if a concurrent write of the same token kept a later one.
TOKEN_POSITION_SQL = "GREATEST(NULLIF(write_lsn, '')::pg_lsn, pg_current_wal_lsn())::text"


def parse_lsn(text: str) -> int:
    """PostgreSQL's ``X/Y`` (hexadecimal halves) as one integer; ``ValueError`` otherwise."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclasses.dataclass(frozen=True)
class StandbyStatus:
    """What one ``STATUS_SQL`` said about the read database (or that it did not answer)."""

    up: bool
    # In recovery: a real standby. False for a second connection to the primary.
    standby: bool = False
    replayed: int | None = None
    lag: float = 0.0
    checked_at: float = 0.0


_statuses: dict[str, StandbyStatus] = {}
# The last state logged per alias ("ok", "down", "lagging"), so each change is logged once.
_logged: dict[str, str] = {}
_primary_down_until = 0.0
_lock = threading.Lock()


def forget() -> None:
    """Drop what this process knows of the databases' state (tests)."""
    global _primary_down_until
    with _lock:
        _statuses.clear()
        _logged.clear()
        _primary_down_until = 0.0


def forget_status() -> None:
    """Read the standby's state afresh on the next request (tests)."""
    with _lock:
        _statuses.clear()


def _log_state(alias: str, state: str, detail: str) -> None:
    with _lock:
        previous = _logged.get(alias, "ok")
        _logged[alias] = state
    if previous == state:
        return
    if state == "ok":
        logger.warning("Read database %r is back: audit reads go to it again", alias)
    else:
        logger.warning("Read database %r is %s (%s): audit reads go to the primary", alias, state,
                       detail)  # fmt: skip


def standby_status(alias: str, *, fresh: bool = False) -> StandbyStatus:
    """The read database's state, read at most once per ``STATUS_TTL_SECONDS`` (unless
    ``fresh``); ``up=False`` when it cannot be reached or queried."""
    now = time.monotonic()
    cached = _statuses.get(alias)
    if cached is not None and not fresh and now - cached.checked_at < STATUS_TTL_SECONDS:
        return cached
    connection = connections[alias]
    if connection.vendor != "postgresql":
        status = StandbyStatus(up=True, checked_at=now)
    else:
        try:
            if connection.connection is not None and not connection.is_usable():
                connection.close()
            with connection.cursor() as cursor:
                cursor.execute(STATUS_SQL)
                standby, replayed, lag = cursor.fetchone()
        except DatabaseError as error:
            # The next query would reconnect; a connection left broken would not.
            connection.close()
            status = StandbyStatus(up=False, checked_at=now)
            _log_state(alias, "down", str(error).strip().splitlines()[0] if str(error) else "")
        else:
            status = StandbyStatus(
                up=True,
                standby=bool(standby),
                replayed=parse_lsn(replayed) if replayed else None,
                lag=float(lag or 0.0),
                checked_at=now,
            )
    with _lock:
        _statuses[alias] = status
    return status


def _mark_down(alias: str) -> None:
    with _lock:
        _statuses[alias] = StandbyStatus(up=False, checked_at=time.monotonic())
    _log_state(alias, "down", "a query failed")


def primary_alias() -> str:
    """The alias writes go to: the primary."""
    return router.db_for_write(apps.get_model("course_audit", "CourseEvent"))


def _reachable(alias: str) -> bool:
    """Whether ``alias`` answers a query now (reconnecting if its connection broke)."""
    connection = connections[alias]
    try:
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        connection.close()
        return False
    return True


# Per request -----------------------------------------------------------------------------

_UNDECIDED: Any = object()


@dataclasses.dataclass
class ReadState:
    """One request's reading: where its audit reads go and what they must see."""

    request: HttpRequest | None = None
    read_only: bool = False
    # The position the request's reads must see, once the caller's is loaded.
    floor: int | None = None
    caller_floor_loaded: bool = False
    # The read decision: an alias, None (the primary), or not made yet.
    alias: Any = _UNDECIDED
    # The primary's position when this request read from it (for its page tokens).
    primary_position: int | None = None
    # Set by ``note_database_error``: run the request again (read-only or on the primary).
    retry: bool = False


_state: ContextVar[ReadState | None] = ContextVar("course_audit_read_state", default=None)


def _current() -> ReadState:
    state = _state.get()
    if state is None:
        # Outside a request (a command, a shell): decided afresh each time, no floor.
        return ReadState()
    return state


def primary_down() -> bool:
    return time.monotonic() < _primary_down_until


def primary_is_up() -> None:
    """The primary answered (a write committed): safe requests read as usual again."""
    global _primary_down_until
    if _primary_down_until:
        with _lock:
            _primary_down_until = 0.0


@contextmanager
def reading(request: HttpRequest, *, read_only: bool | None = None) -> Iterator[ReadState]:
    """The request's read state for the block (``AuditContextMiddleware``): read-only when
    the primary is known to be away and the request is safe (or as ``read_only`` says)."""
    if read_only is None:
        read_only = bool(
            conf.READ_DATABASE is not None and request.method in SAFE_METHODS and primary_down()
        )
    state = ReadState(request=request, read_only=read_only)
    token = _state.set(state)
    try:
        yield state
    finally:
        _state.reset(token)


def read_only() -> bool:
    """Whether the current request is served from the standby because the primary is away."""
    return _current().read_only


def read_only_alias() -> str | None:
    """The read database while the request is in read-only mode, else None (the router)."""
    state = _current()
    return conf.READ_DATABASE if state.read_only else None


def _caller_floor(request: HttpRequest | None) -> int | None:
    """The commit position of the caller's last write: the API token's, else the session's."""
    if request is None:
        return None
    text = getattr(getattr(request, "auth", None), "write_lsn", "") or ""
    if not text:
        session = getattr(request, "session", None)
        text = session.get(SESSION_KEY, "") if session is not None else ""
    try:
        return parse_lsn(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def require(position: int) -> None:
    """The current request's reads must see ``position`` (a page token's): a decision made
    before for a standby that has not replayed it is made again."""
    state = _current()
    if state.floor is not None and state.floor >= position:
        return
    state.floor = position
    if state.alias is not _UNDECIDED and state.alias is not None:
        state.alias = _UNDECIDED


def read_alias() -> str | None:
    """Where the current request's audit reads go: the read database's alias, or None for
    the primary (where the routers say)."""
    alias = conf.READ_DATABASE
    if alias is None:
        return None
    state = _current()
    if state.alias is not _UNDECIDED:
        return state.alias
    if not state.caller_floor_loaded:
        caller = _caller_floor(state.request)
        state.caller_floor_loaded = True
        if caller is not None and (state.floor is None or caller > state.floor):
            state.floor = caller
    state.alias = (
        _choose_read_only(alias, state.floor) if state.read_only else _choose(alias, state.floor)
    )
    return state.alias


def _choose(alias: str, floor: int | None) -> str | None:
    status = standby_status(alias)
    if not status.up:
        return None
    if not status.standby:
        return alias
    max_lag = conf.READ_MAX_LAG
    if max_lag is not None and status.lag > max_lag:
        _log_state(alias, "lagging", f"{status.lag:.1f} s behind")
        return None
    if floor is not None and (status.replayed is None or status.replayed < floor):
        status = standby_status(alias, fresh=True)
        if not status.up or status.replayed is None or status.replayed < floor:
            return None
    _log_state(alias, "ok", "")
    return alias


def _choose_read_only(alias: str, floor: int | None) -> str:
    """In read-only mode, the standby, unless the caller wrote what it has not replayed yet
    and the primary answers again: then the primary, named (the router says standby)."""
    if floor is None:
        return alias
    status = standby_status(alias, fresh=True)
    if status.up and status.replayed is not None and status.replayed >= floor:
        return alias
    primary = primary_alias()
    if _reachable(primary):
        primary_is_up()
        return primary
    return alias


def for_reading(queryset: _QuerySet) -> _QuerySet:
    """``queryset`` on the read database when the request reads from it (``read_alias``),
    else unchanged: read where the database routers say."""
    alias = read_alias()
    return queryset if alias is None else queryset.using(alias)


def rebind(queryset: _QuerySet) -> _QuerySet:
    """``queryset``, moved to the primary if it was bound for the read database and the
    request now reads from the primary (a page token asked for more than the standby has)."""
    alias = conf.READ_DATABASE
    if alias is None or queryset.db != alias:
        return queryset
    chosen = read_alias()
    if chosen == alias:
        return queryset
    return queryset.using(chosen or router.db_for_write(queryset.model))


def page_position() -> int | None:
    """The position a page token issued now must carry, so that the next page is read where
    everything this page saw is: the standby's replay position when the request read there,
    the primary's when it read from the primary; None without a standby (no comparison)."""
    alias = conf.READ_DATABASE
    if alias is None:
        return None
    state = _current()
    chosen = read_alias()
    status = standby_status(alias)
    if chosen == alias:
        return status.replayed if status.standby else None
    if status.up and not status.standby:
        return None
    if state.primary_position is None:
        with connections[primary_alias()].cursor() as cursor:
            cursor.execute(POSITION_SQL)
            state.primary_position = parse_lsn(cursor.fetchone()[0])
    return state.primary_position


def tracks_writes() -> bool:
    """Whether a write's position is worth keeping: reads go to a standby, and the primary
    is PostgreSQL."""
    return conf.READ_DATABASE is not None and connections[primary_alias()].vendor == "postgresql"


def write_position() -> str:
    """The primary's position now, after a request's write committed (``POSITION_SQL``)."""
    with connections[primary_alias()].cursor() as cursor:
        cursor.execute(POSITION_SQL)
        return str(cursor.fetchone()[0])


def later_position(kept: Any, position: str) -> str:
    """The later of a kept position (maybe none, or not one) and ``position``: two writes of
    one caller may finish in either order."""
    try:
        earlier = isinstance(kept, str) and parse_lsn(kept) > parse_lsn(position)
    except ValueError:
        earlier = False
    return str(kept) if earlier else position


def note_database_error(request: HttpRequest) -> None:
    """A safe request failed on the database: have it run once more, in read-only mode if
    the primary is away, on the primary if the standby it read from is (a connection cut
    by a restart that is already over: as before). Unsafe requests keep their 503 (nothing
    is retried: they may have changed something)."""
    global _primary_down_until
    alias = conf.READ_DATABASE
    state = _state.get()
    if alias is None or state is None or request.method not in SAFE_METHODS or state.retry:
        return
    if state.read_only:
        # The standby failed too: nothing left to read from.
        return
    if state.alias == alias and not _reachable(alias):
        _mark_down(alias)
    if not _reachable(primary_alias()):
        with _lock:
            _primary_down_until = time.monotonic() + PRIMARY_RETRY_SECONDS
        logger.warning("The primary database is away: safe requests read from %r", alias)
    state.retry = True


def retry_wanted() -> bool:
    """Whether ``note_database_error`` asked the current request to run again."""
    state = _state.get()
    return state is not None and state.retry
