"""The demo project's settings, as its test suite runs them."""

from auditlog_project.settings import *  # noqa: F403

# Transactional tests end with Django's flush, a TRUNCATE of every table, which the events
# table's append-only trigger lets through only when asked (PostgreSQL).
COURSE_AUDIT_ALLOW_TRUNCATE = True
