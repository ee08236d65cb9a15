"""System checks for a host's configuration of course_audit.

- ``course_audit.E001``: ``AuditContextMiddleware`` is not in ``MIDDLEWARE``.
- ``course_audit.E002``: it comes before ``AuthenticationMiddleware``.
- ``course_audit.E003``: ``COURSE_AUDIT_API_PATH_PREFIX`` is not a path in ``/.../``.
- ``course_audit.E004``: ``COURSE_AUDIT_RECORD_PAGE_VIEWS`` is not ``True`` or ``False``.
- ``course_audit.E005``: ``COURSE_AUDIT_MAX_DIFF_STRING_LENGTH`` is not a positive integer.
- ``course_audit.E006``: ``COURSE_AUDIT_USER_SERIALIZER`` does not name a DRF serializer.
- ``course_audit.E007``: ``USE_TZ`` is off.
- ``course_audit.E008``: ``COURSE_AUDIT_READ_DATABASE`` is not an alias in ``DATABASES``.
- ``course_audit.E009``: ``COURSE_AUDIT_RETENTION_MONTHS`` is neither ``None`` nor a positive
  integer.
- ``course_audit.E010``: ``COURSE_AUDIT_ALLOW_TRUNCATE`` is not ``True`` or ``False``.
- ``course_audit.E011`` (a database check): on PostgreSQL, a recording trigger of the
  course table is missing or disabled.
- ``course_audit.E012``: ``COURSE_AUDIT_SIGNING_KEY`` or ``COURSE_AUDIT_TRUSTED_KEYS`` names
  a key that cannot be read as Ed25519.
- ``course_audit.E013``: ``COURSE_AUDIT_CHECKPOINT_MAX_AGE`` is neither a positive number of
  seconds nor a positive ``timedelta``.
- ``course_audit.E014``: ``COURSE_AUDIT_READ_MAX_LAG`` is neither ``None`` nor a positive
  number of seconds or ``timedelta``.
- ``course_audit.E015``: ``COURSE_AUDIT_DIRECT_DATABASE`` is not an alias in ``DATABASES``.
- ``course_audit.E016``: ``COURSE_AUDIT_ACCESS_LOG`` is not ``True`` or ``False``.
- ``course_audit.E017``: ``COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS`` is neither ``None`` nor
  a positive integer.
- ``course_audit.E018``: ``COURSE_AUDIT_EXPORT_BACKGROUND_ROWS`` is neither ``None`` nor a
  positive integer.
- ``course_audit.E019``: ``COURSE_AUDIT_EXPORT_RETENTION_DAYS`` is neither ``None`` nor a
  positive integer.
- ``course_audit.E020``: ``COURSE_AUDIT_ACCESS_LOG_SYNCHRONOUS_COMMIT`` is not ``True`` or
  ``False``.
- ``course_audit.E021``: ``COURSE_AUDIT_PREPARED_STATEMENTS`` is neither ``True``, ``False``
  nor a list of database aliases in ``DATABASES``.
- ``course_audit.W006``: ``COURSE_AUDIT_READ_DATABASE`` is set but
  ``course_audit.routers.ReadOnlyFailoverRouter`` is not in ``DATABASE_ROUTERS``: while
  the primary is away, the pages and listings would answer 503 instead of reading the
  standby.
- ``course_audit.W007`` (a database check): the connection ``course_audit_partitions`` and
  ``course_audit_checkpoint`` use (``COURSE_AUDIT_DIRECT_DATABASE``, else ``default``)
  reaches a server on another port than the one it names: a pooler (PgBouncer) or a proxy
  is in the way, and in transaction mode their DDL and locks are not safe there.
- ``course_audit.W004`` (a database check): on PostgreSQL, no ``COURSE_AUDIT_SIGNING_KEY``:
  no checkpoint can be made, so tampering with the events would go unnoticed.
- ``course_audit.W005`` (a database check): a signing key is set, events wait to be sealed,
  and the newest checkpoint is older than ``COURSE_AUDIT_CHECKPOINT_MAX_AGE`` (or there is
  none): the ``course_audit_checkpoint`` job is not running.
- ``course_audit.W001``: events go to a database that is neither PostgreSQL nor SQLite.
- ``course_audit.W002``: ``drf_spectacular_sidecar`` (the API docs page's script) is not
  in ``INSTALLED_APPS``.
- ``course_audit.W003`` (a database check: ``migrate``, ``check --database``): on
  PostgreSQL, next month has no partition of the events table (or of the access records
  table), so the daily ``course_audit_partitions`` job is not running.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from rest_framework.serializers import BaseSerializer

from course_audit import integrity, partitions, triggers
from course_audit.conf import DEFAULTS, conf, setting
from course_audit.models import AccessRecord, Course, CourseEvent

# pg_trigger.tgenabled of a trigger that fires on ordinary writes: O (origin and local)
# or A (always).
ENABLED_TRIGGER_STATES = {"O", "A"}

MIDDLEWARE_PATH = "course_audit.middleware.AuditContextMiddleware"
FAILOVER_ROUTER_PATH = "course_audit.routers.ReadOnlyFailoverRouter"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"
SUPPORTED_VENDORS = ("postgresql", "sqlite")


def _position(middleware: list[str], class_path: str) -> int | None:
    """Where the class, or a subclass of it, sits in ``middleware`` (``None``: absent)."""
    wanted = import_string(class_path)
    for index, path in enumerate(middleware):
        if path == class_path:
            return index
        try:
            candidate = import_string(path)
        except ImportError:
            continue  # Django itself fails on it when it loads the middleware.
        if isinstance(candidate, type) and issubclass(candidate, wanted):
            return index
    return None


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.E001: the middleware is missing; E002: it runs before authentication."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    audit = _position(middleware, MIDDLEWARE_PATH)
    if audit is None:
        return [
            Error(
                _("'%(middleware)s' is not in MIDDLEWARE.") % {"middleware": MIDDLEWARE_PATH},
                hint=_(
                    "Without it, changes made in requests are recorded without actor, "
                    "source or request id. Add it after AuthenticationMiddleware."
                ),
                id="course_audit.E001",
            )
        ]
    auth = _position(middleware, AUTH_MIDDLEWARE_PATH)
    if auth is not None and audit < auth:
        return [
            Error(
                _("'%(middleware)s' must come after '%(auth)s' in MIDDLEWARE.")
                % {"middleware": MIDDLEWARE_PATH, "auth": AUTH_MIDDLEWARE_PATH},
                hint=_("It reads request.user to attribute events."),
                id="course_audit.E002",
            )
        ]
    return []


def _setting_error(name: str, message: str, check_id: str, **details: Any) -> Error:
    """``message`` names the setting and takes its ``value`` (and ``details``)."""
    return Error(
        message % {"value": setting(name), **details},
        hint=_("Remove it to use the default, %(default)r.") % {"default": DEFAULTS[name]},
        id=check_id,
    )


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.E003 to E006, E008 to E010, E013, E016 to E021: a ``COURSE_AUDIT_*``
    setting of the wrong kind."""
    errors: list[CheckMessage] = []
    prefix = setting("API_PATH_PREFIX")
    if not (isinstance(prefix, str) and prefix.startswith("/") and prefix.endswith("/")):
        message = _(
            "COURSE_AUDIT_API_PATH_PREFIX must be a URL path starting and ending with '/'; "
            "it is %(value)r."
        )
        errors.append(_setting_error("API_PATH_PREFIX", message, "course_audit.E003"))
    if not isinstance(setting("RECORD_PAGE_VIEWS"), bool):
        message = _("COURSE_AUDIT_RECORD_PAGE_VIEWS must be True or False; it is %(value)r.")
        errors.append(_setting_error("RECORD_PAGE_VIEWS", message, "course_audit.E004"))
    if not _is_positive_int(setting("MAX_DIFF_STRING_LENGTH")):
        message = _(
            "COURSE_AUDIT_MAX_DIFF_STRING_LENGTH must be a positive integer; it is %(value)r."
        )
        errors.append(_setting_error("MAX_DIFF_STRING_LENGTH", message, "course_audit.E005"))
    serializer_error = _serializer_error()
    if serializer_error is not None:
        errors.append(serializer_error)
    months = setting("RETENTION_MONTHS")
    if months is not None and not _is_positive_int(months):
        message = _(
            "COURSE_AUDIT_RETENTION_MONTHS must be a positive integer, or None to keep every "
            "month; it is %(value)r."
        )
        errors.append(_setting_error("RETENTION_MONTHS", message, "course_audit.E009"))
    if not isinstance(setting("ALLOW_TRUNCATE"), bool):
        message = _("COURSE_AUDIT_ALLOW_TRUNCATE must be True or False; it is %(value)r.")
        errors.append(_setting_error("ALLOW_TRUNCATE", message, "course_audit.E010"))
    if not _is_positive_age(setting("CHECKPOINT_MAX_AGE")):
        message = _(
            "COURSE_AUDIT_CHECKPOINT_MAX_AGE must be a positive number of seconds or a "
            "positive datetime.timedelta; it is %(value)r."
        )
        errors.append(_setting_error("CHECKPOINT_MAX_AGE", message, "course_audit.E013"))
    max_lag = setting("READ_MAX_LAG")
    if max_lag is not None and not _is_positive_age(max_lag):
        message = _(
            "COURSE_AUDIT_READ_MAX_LAG must be None or a positive number of seconds or "
            "datetime.timedelta; it is %(value)r."
        )
        errors.append(_setting_error("READ_MAX_LAG", message, "course_audit.E014"))
    direct = setting("DIRECT_DATABASE")
    if direct is not None and not (isinstance(direct, str) and direct in settings.DATABASES):
        message = _(
            "COURSE_AUDIT_DIRECT_DATABASE must be the alias of a database in DATABASES; it is "
            "%(value)r."
        )
        errors.append(_setting_error("DIRECT_DATABASE", message, "course_audit.E015"))
    if not isinstance(setting("ACCESS_LOG"), bool):
        message = _("COURSE_AUDIT_ACCESS_LOG must be True or False; it is %(value)r.")
        errors.append(_setting_error("ACCESS_LOG", message, "course_audit.E016"))
    access_months = setting("ACCESS_LOG_RETENTION_MONTHS")
    if access_months is not None and not _is_positive_int(access_months):
        message = _(
            "COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS must be a positive integer, or None to "
            "keep every month; it is %(value)r."
        )
        errors.append(_setting_error("ACCESS_LOG_RETENTION_MONTHS", message, "course_audit.E017"))
    background_rows = setting("EXPORT_BACKGROUND_ROWS")
    if background_rows is not None and not _is_positive_int(background_rows):
        message = _(
            "COURSE_AUDIT_EXPORT_BACKGROUND_ROWS must be a positive integer, or None for no "
            "background exports; it is %(value)r."
        )
        errors.append(_setting_error("EXPORT_BACKGROUND_ROWS", message, "course_audit.E018"))
    export_days = setting("EXPORT_RETENTION_DAYS")
    if export_days is not None and not _is_positive_int(export_days):
        message = _(
            "COURSE_AUDIT_EXPORT_RETENTION_DAYS must be a positive integer, or None to keep "
            "every background export; it is %(value)r."
        )
        errors.append(_setting_error("EXPORT_RETENTION_DAYS", message, "course_audit.E019"))
    if not isinstance(setting("ACCESS_LOG_SYNCHRONOUS_COMMIT"), bool):
        message = _(
            "COURSE_AUDIT_ACCESS_LOG_SYNCHRONOUS_COMMIT must be True or False; it is %(value)r."
        )
        errors.append(_setting_error("ACCESS_LOG_SYNCHRONOUS_COMMIT", message, "course_audit.E020"))
    prepared = setting("PREPARED_STATEMENTS")
    if not isinstance(prepared, bool) and not (
        isinstance(prepared, (list, tuple, set, frozenset))
        and all(isinstance(alias, str) and alias in settings.DATABASES for alias in prepared)
    ):
        message = _(
            "COURSE_AUDIT_PREPARED_STATEMENTS must be True, False or a list of database "
            "aliases in DATABASES; it is %(value)r."
        )
        errors.append(_setting_error("PREPARED_STATEMENTS", message, "course_audit.E021"))
    read_database = setting("READ_DATABASE")
    if read_database is not None and not (
        isinstance(read_database, str) and read_database in settings.DATABASES
    ):
        errors.append(
            Error(
                _(
                    "COURSE_AUDIT_READ_DATABASE must be the alias of a database in DATABASES "
                    "(%(aliases)s); it is %(value)r."
                )
                % {"aliases": ", ".join(map(repr, settings.DATABASES)), "value": read_database},
                hint=_(
                    "Name the alias of your read replica, or remove the setting to read from "
                    "the database your routers choose."
                ),
                id="course_audit.E008",
            )
        )
    return errors


@register()
def check_failover_router(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.W006: a read database without the router that serves read-only mode."""
    alias = setting("READ_DATABASE")
    if not isinstance(alias, str) or alias not in settings.DATABASES:
        return []  # none, or E008
    if FAILOVER_ROUTER_PATH in _router_paths():
        return []
    return [
        Warning(
            _(
                "COURSE_AUDIT_READ_DATABASE is set but %(router)s is not in DATABASE_ROUTERS: "
                "while the primary is away, the audit pages and listings answer 503 instead of "
                "reading from the standby."
            )
            % {"router": FAILOVER_ROUTER_PATH},
            hint=_("Put %(router)s first in DATABASE_ROUTERS.") % {"router": FAILOVER_ROUTER_PATH},
            id="course_audit.W006",
        )
    ]


def _router_paths() -> list[str]:
    paths = []
    for entry in settings.DATABASE_ROUTERS:
        kind = entry if isinstance(entry, type) else type(entry)
        paths.append(entry if isinstance(entry, str) else f"{kind.__module__}.{kind.__qualname__}")
    return paths


@register(Tags.database)
def check_direct_connection(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """course_audit.W007: the partition and checkpoint jobs' connection goes through a
    pooler or proxy (the server answers on another port than the one configured)."""
    alias = setting("DIRECT_DATABASE") or DEFAULT_DB_ALIAS
    if not databases or alias not in databases or alias not in connections:
        return []
    connection = connections[alias]
    configured = connection.settings_dict.get("PORT") or "5432"
    if connection.vendor != "postgresql" or not str(configured).isdigit():
        return []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT inet_server_port()")
            (served,) = cursor.fetchone()
    except DatabaseError:  # the database is away: not ours to report
        return []
    if served is None or int(served) == int(configured):
        return []
    return [
        Warning(
            _(
                "Database '%(alias)s' names port %(configured)s but the server answers on "
                "%(served)s: a pooler or proxy is in the way, and course_audit_partitions and "
                "course_audit_checkpoint (DDL, locks) must not run through PgBouncer in "
                "transaction mode."
            )
            % {"alias": alias, "configured": configured, "served": served},
            hint=_(
                "Add an alias with a direct connection to the primary and name it in "
                "COURSE_AUDIT_DIRECT_DATABASE (or silence this warning if the proxy keeps "
                "each session on one server connection)."
            ),
            id="course_audit.W007",
        )
    ]


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_positive_age(value: Any) -> bool:
    if isinstance(value, dt.timedelta):
        return value > dt.timedelta(0)
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _serializer_error() -> Error | None:
    path = setting("USER_SERIALIZER")
    if not isinstance(path, str):
        message = _(
            "COURSE_AUDIT_USER_SERIALIZER must be the dotted path of a serializer class; "
            "it is %(value)r."
        )
        return _setting_error("USER_SERIALIZER", message, "course_audit.E006")
    try:
        serializer = import_string(path)
    except ImportError as error:
        message = _("COURSE_AUDIT_USER_SERIALIZER does not import (%(error)s); it is %(value)r.")
        return _setting_error("USER_SERIALIZER", message, "course_audit.E006", error=error)
    if not (isinstance(serializer, type) and issubclass(serializer, BaseSerializer)):
        message = _(
            "COURSE_AUDIT_USER_SERIALIZER must name a subclass of "
            "rest_framework.serializers.BaseSerializer; it is %(value)r."
        )
        return _setting_error("USER_SERIALIZER", message, "course_audit.E006")
    return None


@register(Tags.database)
def check_partitions(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """course_audit.W003: next month's events (or access records) would land in the default
    partition."""
    start = partitions.add_months(partitions.month_start(timezone.now()), 1)
    tables = (
        (
            partitions.EVENTS,
            CourseEvent,
            _(
                "No partition of the course events table on '%(alias)s' covers %(month)s: "
                "its events will go to the default partition."
            ),
        ),
        (
            partitions.ACCESS_RECORDS,
            AccessRecord,
            _(
                "No partition of the access records table on '%(alias)s' covers %(month)s: "
                "its records will go to the default partition."
            ),
        ),
    )
    warnings: list[CheckMessage] = []
    for table, model, message in tables:
        alias = router.db_for_write(model)
        if not databases or alias not in databases:
            continue
        try:
            if not partitions.is_partitioned(alias, table):
                continue
            made = partitions.list_partitions(alias, table)
        except DatabaseError:  # not migrated yet, or the database is away: not ours to report
            continue
        if partitions.covered(made, start, partitions.add_months(start, 1)):
            continue
        warnings.append(
            Warning(
                message % {"alias": alias, "month": f"{start:%Y-%m}"},
                hint=_(
                    "Run 'manage.py course_audit_partitions --prune' daily (cron, a systemd "
                    "timer); run it now to make the coming months."
                ),
                id="course_audit.W003",
            )
        )
    return warnings


@register()
def check_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.E012: a signing or trusted key that cannot be loaded."""
    try:
        integrity.trusted_keys()
    except ImproperlyConfigured as error:
        return [
            Error(
                str(error),
                hint=_(
                    "COURSE_AUDIT_SIGNING_KEY is the path of a PEM Ed25519 private key "
                    "(manage.py course_audit_keygen); each COURSE_AUDIT_TRUSTED_KEYS entry a "
                    "path to a PEM key or the base64 of a raw Ed25519 public key."
                ),
                id="course_audit.E012",
            )
        ]
    return []


@register(Tags.database)
def check_sealing(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """course_audit.W004: events on PostgreSQL, and no key to seal them with."""
    alias = router.db_for_write(CourseEvent)
    if not databases or alias not in databases or connections[alias].vendor != "postgresql":
        return []
    if setting("SIGNING_KEY"):
        return []
    return [
        Warning(
            _(
                "COURSE_AUDIT_SIGNING_KEY is not set: no checkpoint seals the course events, "
                "so whoever can bypass the database's triggers could rewrite them unnoticed."
            ),
            hint=_(
                "Make a key with 'manage.py course_audit_keygen PATH', set "
                "COURSE_AUDIT_SIGNING_KEY to PATH and run 'manage.py course_audit_checkpoint' "
                "every few minutes (docs/integrity.md)."
            ),
            id="course_audit.W004",
        )
    ]


@register(Tags.database)
def check_checkpoint_age(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """course_audit.W005: a signing key is set, events wait to be sealed, and the newest
    checkpoint is older than ``COURSE_AUDIT_CHECKPOINT_MAX_AGE`` (or none was ever made)."""
    alias = router.db_for_write(CourseEvent)
    if not databases or alias not in databases or not setting("SIGNING_KEY"):
        return []
    if not _is_positive_age(setting("CHECKPOINT_MAX_AGE")):
        return []  # E013
    try:
        newest = integrity.latest_checkpoint(alias)
        if newest is not None and timezone.now() - newest.created_at <= conf.CHECKPOINT_MAX_AGE:
            return []
        waiting = CourseEvent.objects.using(alias).filter(
            id__gt=newest.last_id if newest else integrity.MIN_ID
        )
        if not waiting.exists():
            return []
    except DatabaseError:  # not migrated yet, or the database is away: not ours to report
        return []
    if newest is None:
        message = _(
            "No checkpoint seals the course events on '%(alias)s' although a signing key is "
            "set: the course_audit_checkpoint job is not running."
        ) % {"alias": alias}
    else:
        message = _(
            "The newest checkpoint on '%(alias)s' (#%(sequence)s) was made %(when)s ago, "
            "more than COURSE_AUDIT_CHECKPOINT_MAX_AGE, and newer events wait to be sealed: "
            "the course_audit_checkpoint job is not running."
        ) % {
            "alias": alias,
            "sequence": newest.sequence,
            "when": timesince(newest.created_at),
        }
    return [
        Warning(
            message,
            hint=_(
                "Run 'manage.py course_audit_checkpoint' every few minutes (cron, a systemd "
                "timer, a Kubernetes CronJob: docs/integrity.md), and look at its output."
            ),
            id="course_audit.W005",
        )
    ]


# The migration that installs the recording triggers.
TRIGGERS_MIGRATION = ("course_audit", "0006_record_by_trigger")


@register(Tags.database)
def check_triggers(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """course_audit.E011: on PostgreSQL, a recording trigger of the course table is missing
    or disabled, so changes to courses go unrecorded."""
    alias = router.db_for_write(Course)
    if not databases or alias not in databases or connections[alias].vendor != "postgresql":
        return []
    try:
        if TRIGGERS_MIGRATION not in MigrationRecorder(connections[alias]).applied_migrations():
            return []  # migrate installs them
        with connections[alias].cursor() as cursor:
            states = triggers.trigger_states(cursor)
    except DatabaseError:  # the database is away: not ours to report
        return []
    broken = sorted(
        f"{name} ({'missing' if name not in states else 'disabled'})"
        for name in triggers.TRIGGERS
        if states.get(name) not in ENABLED_TRIGGER_STATES
    )
    if not broken:
        return []
    return [
        Error(
            _(
                "The course table on '%(alias)s' lacks its recording triggers: %(triggers)s. "
                "Changes to courses are not recorded."
            )
            % {"alias": alias, "triggers": ", ".join(broken)},
            hint=_(
                "Enable them (ALTER TABLE course_audit_course ENABLE TRIGGER ...), or install "
                "them again: manage.py migrate course_audit 0005, then manage.py migrate."
            ),
            id="course_audit.E011",
        )
    ]


@register()
def check_database(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.W001: events are written to a database the app is not tested on.

    The vendor is read from the backend class; no connection is opened.
    """
    alias = router.db_for_write(CourseEvent)
    vendor = connections[alias].vendor
    # SQLite gets a plain events table: no monthly partitions and no triggers.
    if vendor in SUPPORTED_VENDORS:
        return []
    return [
        Warning(
            _(
                "course_audit writes its events to the database '%(alias)s', which is "
                "%(vendor)s; it is built and tested for PostgreSQL and SQLite only."
            )
            % {"alias": alias, "vendor": vendor},
            hint=_(
                "Route course_audit's models to a PostgreSQL database with a database "
                "router, or silence this check if you have tested your database yourself."
            ),
            id="course_audit.W001",
        )
    ]


@register()
def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.W002: the API docs page's script comes from drf_spectacular_sidecar."""
    if apps.is_installed("drf_spectacular_sidecar"):
        return []
    return [
        Warning(
            _("'drf_spectacular_sidecar' is not in INSTALLED_APPS."),
            hint=_(
                "course_audit's API documentation page (api/docs/) loads its script from "
                "that app's static files; add it to INSTALLED_APPS."
            ),
            id="course_audit.W002",
        )
    ]


@register()
def check_time_zone_support(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.E007: events are stamped and shown as aware date-times."""
    if settings.USE_TZ:
        return []
    return [
        Error(
            _("course_audit needs USE_TZ = True."),
            hint=_(
                "Events are stored in UTC and shown with their offset in the active time "
                "zone; naive date-times cannot be. Set USE_TZ = True (Django's default)."
            ),
            id="course_audit.E007",
        )
    ]
