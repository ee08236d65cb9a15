"""The demo project's settings with the benchmark's URLconf (``bench.bench_urls``): the app's
URLs, the baseline pagers and a trivial JSON view. Used in-process by ``suite.py`` and by
the gunicorn it starts; never by the app or the demo."""

import os

from auditlog_project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
# The exports measured are the streamed ones, whatever their size: never a background job.
COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = None

# scripts/load --replication: the server writes through PgBouncer in transaction mode
# (DATABASE_URL) and reads the audit events from a streaming standby
# (REPLICA_DATABASE_URL), as docs/scaling.md describes; the partition and checkpoint jobs
# would use DIRECT_DATABASE_URL, the primary itself.
if os.environ.get("REPLICA_DATABASE_URL"):
    import dj_database_url

    from auditlog_project.settings import DATABASES

    def _alias(variable: str) -> dict[str, object]:
        return {
            **dj_database_url.parse(os.environ[variable], conn_max_age=60, conn_health_checks=True),
            # A server that is away must fail a connection fast, not hang a request.
            "OPTIONS": {"connect_timeout": 3},
        }

    DATABASES = {
        **DATABASES,
        "default": {**_alias("DATABASE_URL"), "DISABLE_SERVER_SIDE_CURSORS": True},
        "replica": _alias("REPLICA_DATABASE_URL"),
        "direct": _alias("DIRECT_DATABASE_URL"),
    }
    COURSE_AUDIT_READ_DATABASE = "replica"
    COURSE_AUDIT_DIRECT_DATABASE = "direct"
    DATABASE_ROUTERS = ["course_audit.routers.ReadOnlyFailoverRouter"]
    # Debian 12's PgBouncer (1.18) cannot carry prepared statements in transaction mode:
    # only the standby, reached directly, gets them (docs/scaling.md §3).
    COURSE_AUDIT_PREPARED_STATEMENTS = ["replica"]
