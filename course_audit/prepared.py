"""Server-side prepared statements for the read path's fixed-shape queries (opt-in).

A request of the audit API runs a few queries whose SQL text never changes (the token with
its grants, the course or account by id, the page of events, the access record's INSERT):
PostgreSQL parses and plans each afresh, and at 10 million events planning the page across
the month partitions takes longer than running it. ``COURSE_AUDIT_PREPARED_STATEMENTS``
names the database aliases (or ``True``: every PostgreSQL alias) on which these queries,
and only these, are sent as named prepared statements: parsed once per connection, and
planned as PostgreSQL's ``plan_cache_mode`` decides (``auto``: a generic plan once it is
no worse than the custom ones, e.g. for a lookup by key, custom plans where the values
matter, e.g. the months a deep page reaches).

Every other query stays as Django sends it (its parameters bound by the client, never
prepared): the history pages' charts and the exports, whose best plans depend on the
course, are never read with a generic plan by this setting.

A named statement lives in the server session that prepared it, so a pooler in
transaction mode must carry prepared statements (PgBouncer 1.21 or later with
``max_prepared_statements`` above 0); behind an older one, leave the setting off
(docs/integration.md §8, docs/scaling.md §3).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from django.db import connections
from django.db.backends.utils import CursorWrapper

from course_audit.conf import conf

# What psycopg's threshold becomes on a connection that prepares nothing of its own accord
# (Django's default, ``prepare_threshold`` None): only the queries sent here, which ask
# for it, are prepared; every other query is counted and never reaches it.
_NEVER = 2**62


def enabled(using: str) -> bool:
    """Whether the read path's fixed-shape queries are prepared on ``using``."""
    value = conf.PREPARED_STATEMENTS
    if not value or connections[using].vendor != "postgresql":
        return False
    return value is True or using in value


def cursor(using: str) -> CursorWrapper:
    """A cursor of ``using`` whose queries are prepared where ``enabled``, else Django's
    own (``connection.cursor()``). Used as Django's, in a ``with`` block: each query is
    counted and logged as any other."""
    if not enabled(using):
        return connections[using].cursor()
    connection: Any = connections[using]
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = connection.connection
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _NEVER
        cursor = _cursor_class(connection.queries_logged)(raw)
        cursor.django = connection
        _read_times_as_django_does(connection, cursor)
        wrapped: CursorWrapper = connection._prepare_cursor(cursor)
        return wrapped


@functools.cache
def _postgresql() -> Any:
    """Django's PostgreSQL backend module, imported on first use: a site without psycopg
    (SQLite) never needs it."""
    return importlib.import_module("django.db.backends.postgresql.base")


@functools.cache
def _compiled_tz_loader() -> Any:
    """psycopg's own ``timestamptz`` loader (its C one where psycopg has it)."""
    backend = _postgresql()
    adapters = importlib.import_module("psycopg").adapters
    return adapters.get_loader(backend.TIMESTAMPTZ_OID, backend.Format.TEXT)


@functools.cache
def _cursor_class(logged: bool) -> type:
    class PreparingCursor(_postgresql().ServerBindingCursor):  # type: ignore[misc]
        """Django's cursor with server-side parameters, every query asking to be
        prepared."""

        django: Any  # the Django connection it serves, whose ``ops`` show its queries

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            try:
                return super().execute(query, params, **{**kwargs, "prepare": True})
            finally:
                if logged and getattr(self, "_query", None) is None:
                    # psycopg keeps no query text of a prepared run, which Django's query
                    # log (``connection.queries``, ``CaptureQueriesContext``) reads, of a
                    # run that failed too: the statement with its values, as Django shows
                    # a query bound by the server.
                    self._query = _Shown(self.django.ops.compose_sql(query, params).encode())

    return PreparingCursor


class _Shown:
    """What Django's query log reads of a psycopg cursor (``cursor._query.query``)."""

    def __init__(self, query: bytes) -> None:
        self.query = query


def _read_times_as_django_does(connection: Any, cursor: Any) -> None:
    """Times read as Django's connection reads them (aware, in ``connection.timezone``),
    by psycopg's own loader where that gives the same values.

    Django loads every ``timestamptz`` with a loader of its own written in Python (it
    replaces each value's zone with the connection's), about ten times slower than
    psycopg's compiled one: a page of 100 events reads some 200 times. When the session's
    time zone is the one Django wants (``ensure_timezone`` sets it so on connecting)
    psycopg's loader returns the very same values, and this cursor uses it; otherwise it
    uses Django's, as Django's ``create_cursor`` would.
    """
    backend = _postgresql()
    raw = connection.connection
    if connection.timezone is not None and raw.info.timezone == connection.timezone:
        cursor.adapters.register_loader(backend.TIMESTAMPTZ_OID, _compiled_tz_loader())
        return
    loader = raw.adapters.get_loader(backend.TIMESTAMPTZ_OID, backend.Format.TEXT)
    if connection.timezone != loader.timezone:
        backend.register_tzloader(connection.timezone, cursor)
