"""The demo's settings for the test suite, with a second database alias, ``replica``.

``replica`` stands in for a streaming replica (``COURSE_AUDIT_READ_DATABASE``, see
tests/test_read_database.py): a connection of its own to the same database, which the
test runner points at the test database (``MIRROR``) instead of creating another.
Nothing reads from it unless a test sets ``COURSE_AUDIT_READ_DATABASE``.
"""

import os
import tempfile

from auditlog_project.settings import *  # noqa: F403
from auditlog_project.settings import DATABASES

DATABASES = {
    **DATABASES,
    "replica": {**DATABASES["default"], "TEST": {"MIRROR": "default"}},
}

# Transactional tests end with Django's flush, a TRUNCATE of every table, which the events
# table's append-only trigger lets through only when asked (PostgreSQL).
COURSE_AUDIT_ALLOW_TRUNCATE = True

# No signing key unless a test makes one (the demo's var/signing.pem, or one named in the
# environment, would otherwise change what the suite sees), and digests of tests that seal
# go to their own directories (the tests' ``keys`` fixtures).
COURSE_AUDIT_SIGNING_KEY = None
# A prune writes archives to the digest storage: never the demo's var/digests.
COURSE_AUDIT_DIGEST_DIR = tempfile.mkdtemp(prefix="course-audit-test-digests-")
# Background exports go to a directory of their own, never the demo's var/exports.
COURSE_AUDIT_EXPORT_DIR = os.environ.get("COURSE_AUDIT_EXPORT_DIR") or tempfile.mkdtemp(
    prefix="course-audit-test-exports-"
)
