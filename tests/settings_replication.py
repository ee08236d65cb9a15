"""Settings for the replication tests (tests/test_replication.py, marker ``replication``),
run against the private primary, streaming standby and PgBouncer that
``scripts/replication`` starts and describes in ``COURSE_AUDIT_REPLICATION``:

- ``default``: PgBouncer in transaction mode in front of the primary (every write);
- ``direct``: the primary itself, for ``course_audit_partitions`` and
  ``course_audit_checkpoint`` (``COURSE_AUDIT_DIRECT_DATABASE``);
- ``replica``: the standby (``COURSE_AUDIT_READ_DATABASE``), with the router that serves
  read-only mode while the primary is away.

The test database is made through PgBouncer; the standby gets it by replication, and
``direct`` and ``replica`` point at it (``MIRROR``). Without the variable these are the
suite's own settings, and the replication tests skip.
"""

import json
import os

import dj_database_url

from tests.settings import *  # noqa: F403

REPLICATION = json.loads(os.environ.get("COURSE_AUDIT_REPLICATION") or "null")

if REPLICATION:

    def _alias(url: str, **extra: object) -> dict[str, object]:
        return {
            **dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True),
            # A standby or a server that is away must fail a connection fast.
            "OPTIONS": {"connect_timeout": 3},
            **extra,
        }

    DATABASES = {
        # The site's settings for PgBouncer in transaction mode (docs/scaling.md §3).
        "default": _alias(REPLICATION["pooler_url"], DISABLE_SERVER_SIDE_CURSORS=True),
        "direct": _alias(REPLICATION["primary_url"], TEST={"MIRROR": "default"}),
        "replica": _alias(REPLICATION["standby_url"], TEST={"MIRROR": "default"}),
    }
    COURSE_AUDIT_READ_DATABASE = "replica"
    COURSE_AUDIT_DIRECT_DATABASE = "direct"
    DATABASE_ROUTERS = ["course_audit.routers.ReadOnlyFailoverRouter"]
    # Debian 12's PgBouncer (1.18) cannot carry prepared statements in transaction mode:
    # only the standby, reached directly, gets them (docs/scaling.md §3).
    COURSE_AUDIT_PREPARED_STATEMENTS = ["replica"]
