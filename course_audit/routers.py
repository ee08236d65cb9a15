"""``ReadOnlyFailoverRouter``: while the primary is away, safe requests read everything
from ``COURSE_AUDIT_READ_DATABASE`` (sessions, users, tokens and grants too), so the
audit pages, API listings and exports keep answering (read-only mode, ``replication``).

Put it first in ``DATABASE_ROUTERS`` when the read database is a standby; otherwise it
says nothing and your routers (or Django's default) decide, as before.
"""

from __future__ import annotations

from typing import Any

from course_audit import replication


class ReadOnlyFailoverRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return replication.read_only_alias()
