"""Settings of the demo host project: it only configures course_audit.

From the environment: ``DATABASE_URL`` (a ``postgres://`` URL selects PostgreSQL through
psycopg; unset means the SQLite file ``db.sqlite3``), ``SECRET_KEY``, ``DEBUG``,
``ALLOWED_HOSTS`` (comma-separated), and ``COURSE_AUDIT_SIGNING_KEY`` and
``COURSE_AUDIT_DIGEST_DIR`` (checkpoints: by default the key ``scripts/demo`` makes in
``var/``, when it is there).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from course_audit.api.enum_names import ENUM_NAME_OVERRIDES

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", True)
# The demo's fallback key is for a laptop only; production settings must set SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "course-audit-demo-insecure-key-do-not-deploy")
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "course_audit",
    # The task framework (Django 6.0's django.tasks, backported) and its database backend:
    # big exports are queued there and run by `manage.py db_worker` (scripts/demo starts it).
    "django_tasks",
    "django_tasks_db",
    # The demo university and manage.py seed_demo: the demo host's own, never the app's.
    "auditlog_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The pages speak the browser's language (Accept-Language) among LANGUAGES; API clients
    # that ask for none get English, as the contract's error bodies are written.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "course_audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "auditlog_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "auditlog_project.wsgi.application"

# Connections are kept for a minute; each is checked before a request reuses it, so one the
# database dropped while idle (a restart, a failover) is replaced instead of failing that
# request.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60, conn_health_checks=True
    )
}
# On PostgreSQL the audit API's fixed-shape queries (the token, the course or account, the
# unfiltered page of events, the access record) are prepared statements
# (COURSE_AUDIT_PREPARED_STATEMENTS: course_audit.prepared), and nothing else is: that saves
# the API its planning (the page's, across the month partitions, costs more than running
# it) while every other query is planned for its own values. Their plans are generic
# (plan_cache_mode force_generic_plan): a statement whose parameters Django binds on the
# client has none, so the setting changes the plans of these statements alone (measured:
# docs/benchmarks.md, "planning"; docs/integration.md §8). Behind PgBouncer in transaction
# mode they need PgBouncer 1.21 or later (docs/scaling.md §3); DATABASE_PREPARED_STATEMENTS=off
# turns them off.
#
# DATABASE_PREPARE_THRESHOLD=5 prepares every query a connection ran 5 times instead, with
# server-side parameters: measured too, and slower for the history pages and exports (a
# generic plan misjudges a course far busier than the average one). DATABASE_PLAN_CACHE_MODE
# is PostgreSQL's plan_cache_mode for the connection, empty for the server's own.
_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
COURSE_AUDIT_PREPARED_STATEMENTS = (
    _POSTGRESQL and os.environ.get("DATABASE_PREPARED_STATEMENTS", "on") != "off"
)
_PREPARE_THRESHOLD = os.environ.get("DATABASE_PREPARE_THRESHOLD", "off")
if _POSTGRESQL and _PREPARE_THRESHOLD != "off":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=int(_PREPARE_THRESHOLD)
    )
_PLAN_CACHE_MODE = os.environ.get(
    "DATABASE_PLAN_CACHE_MODE",
    "force_generic_plan" if COURSE_AUDIT_PREPARED_STATEMENTS or _PREPARE_THRESHOLD != "off" else "",
)
if _POSTGRESQL and _PLAN_CACHE_MODE:
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c plan_cache_mode={_PLAN_CACHE_MODE}"
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Each in its own name, as a language menu shows them.
LANGUAGES = [("en", "English"), ("es", "Español")]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Content-Security-Policy (django-csp): the site's own scripts, styles, images and fonts,
# nothing inline, nothing from elsewhere, and no framing. course_audit's pages need no more;
# its API docs page (Redoc) sends a policy of its own, which CSPMiddleware leaves as it is.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
    },
}

# For a schema of the whole site (drf-spectacular's own views and its check in `check
# --deploy`): course_audit's enums, named as its own schema names them.
SPECTACULAR_SETTINGS = {"ENUM_NAME_OVERRIDES": {**ENUM_NAME_OVERRIDES}}

# Tamper evidence (docs/integrity.md). scripts/demo makes the demo's key pair in var/
# (git-ignored) with course_audit_keygen before anything else, and seed_demo seals the
# history with it. Only when the file is there: a key that cannot be read is an error
# (course_audit.E012), and a fresh clone has none until scripts/demo has run. The
# environment's COURSE_AUDIT_SIGNING_KEY names another key; set empty, it turns sealing off.
DEMO_VAR = BASE_DIR / "var"
_DEMO_SIGNING_KEY = DEMO_VAR / "signing.pem"
COURSE_AUDIT_SIGNING_KEY = (
    os.environ.get(
        "COURSE_AUDIT_SIGNING_KEY", str(_DEMO_SIGNING_KEY) if _DEMO_SIGNING_KEY.is_file() else ""
    )
    or None
)
COURSE_AUDIT_DIGEST_DIR = os.environ.get("COURSE_AUDIT_DIGEST_DIR", str(DEMO_VAR / "digests"))

# Background exports (course_audit.tasks) are queued in the database and run by the worker,
# `manage.py db_worker`: queued tasks outlive a restart of the server or the worker.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
COURSE_AUDIT_EXPORT_DIR = os.environ.get("COURSE_AUDIT_EXPORT_DIR", str(DEMO_VAR / "exports"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "course_audit:home"
LOGOUT_REDIRECT_URL = "login"
