"""The models of course_audit.

Courses and accounts are the audited objects; ``CourseEvent`` is the append-only history.
Every write to a ``Course`` - ``save()``, ``create()``, ``QuerySet.update()``,
``bulk_update()`` and ``bulk_create()`` - records its events in the same transaction
(see ``course_audit.recording``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.db.models import Q, Value
from django.db.models.functions import Concat, Substr
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext

from course_audit import choices, recording
from course_audit.diff import TRACKED_FIELDS
from course_audit.querysets import CourseEventQuerySet, CourseQuerySet
from course_audit.types import User


class Permission(models.TextChoices):
    """Permissions a role can grant on an account and its whole subtree."""

    VIEW_COURSE_CHANGES = "view_course_changes", _("View course change history")
    MANAGE_COURSES = "manage_courses", _("Manage courses")


class Account(models.Model):
    """A node of an institution's account tree; a root account is a tenant."""

    WorkflowState = choices.AccountState

    name = models.CharField(_("name"), max_length=255)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent account"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sub_accounts",
    )
    root_account = models.ForeignKey(
        "self",
        verbose_name=_("root account"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # NULL, not "", means "no SIS id": the per-root unique constraint ignores NULLs.
    sis_account_id = models.CharField(  # noqa: DJ001
        _("SIS account id"), max_length=255, null=True, blank=True
    )
    workflow_state = models.CharField(
        _("state"), max_length=16, choices=WorkflowState.choices, default=WorkflowState.ACTIVE
    )
    # The ids of every ancestor, root first: "/1/4/" for an account whose parent is 4 under
    # root 1, "/" for a root. Subtree and ancestor look-ups then need no recursive query.
    ancestor_path = models.CharField(max_length=1024, editable=False, default="/", db_index=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "sis_account_id"],
                condition=Q(sis_account_id__isnull=False, root_account__isnull=False),
                name="course_audit_account_sis_id_unique_in_root",
            ),
            models.UniqueConstraint(
                fields=["sis_account_id"],
                condition=Q(sis_account_id__isnull=False, root_account__isnull=True),
                name="course_audit_root_account_sis_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.parent_id is None:
            self.root_account = None
            new_path = "/"
        else:
            parent = self.parent
            assert parent is not None
            if self.pk is not None and self.pk in parent.lineage_ids:
                raise ValueError("An account cannot be moved below itself.")
            if self.pk is not None and self.root_account_id not in (None, parent.resolved_root_id):
                raise ValueError("An account cannot be moved to another root account.")
            self.root_account_id = parent.resolved_root_id
            new_path = parent.descendant_path_prefix
        old_prefix = self.descendant_path_prefix if self.pk is not None else None
        moved = self.pk is not None and self.ancestor_path != new_path
        self.ancestor_path = new_path
        using = kwargs.get("using") or router.db_for_write(Account, instance=self)
        with transaction.atomic(using=using, savepoint=False):
            super().save(*args, **kwargs)
            if moved and old_prefix is not None:
                self._move_descendants(old_prefix, using)

    def _move_descendants(self, old_prefix: str, using: str) -> None:
        Account.objects.using(using).filter(ancestor_path__startswith=old_prefix).update(
            ancestor_path=Concat(
                Value(self.descendant_path_prefix), Substr("ancestor_path", len(old_prefix) + 1)
            )
        )

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def resolved_root_id(self) -> int:
        """The id of this account's root account (its own id for a root)."""
        return self.root_account_id or self.pk

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids of the ancestors, root first, not including this account."""
        return [int(part) for part in self.ancestor_path.strip("/").split("/") if part]

    @property
    def lineage_ids(self) -> list[int]:
        """Ids from the root down to and including this account."""
        return [*self.ancestor_ids, self.pk]

    @property
    def descendant_path_prefix(self) -> str:
        return f"{self.ancestor_path}{self.pk}/"

    def subtree_q(self, prefix: str = "") -> Q:
        """A filter matching this account and every account below it."""
        return Q(**{f"{prefix}pk": self.pk}) | Q(
            **{f"{prefix}ancestor_path__startswith": self.descendant_path_prefix}
        )


class Role(models.Model):
    """A named set of permissions, granted to users through account memberships."""

    name = models.CharField(_("name"), max_length=255)
    root_account = models.ForeignKey(
        Account,
        verbose_name=_("root account"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="roles",
        help_text=_("Leave empty for a role available in every root account."),
    )
    view_course_changes = models.BooleanField(_("view course changes"), default=False)
    manage_courses = models.BooleanField(_("manage courses"), default=False)

    class Meta:
        verbose_name = _("role")
        verbose_name_plural = _("roles")
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name

    def grants(self, permission: str) -> bool:
        return bool(getattr(self, Permission(permission).value))


class AccountMembership(models.Model):
    """A user holding a role on an account: it applies to that account and its subtree."""

    class WorkflowState(models.TextChoices):
        ACTIVE = "active", _("Active")
        DELETED = "deleted", _("Revoked")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="course_audit_memberships",
    )
    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.ForeignKey(
        Role, verbose_name=_("role"), on_delete=models.PROTECT, related_name="memberships"
    )
    workflow_state = models.CharField(
        _("state"), max_length=16, choices=WorkflowState.choices, default=WorkflowState.ACTIVE
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("account membership")
        verbose_name_plural = _("account memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "account", "role"], name="course_audit_membership_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} - {self.role} @ {self.account}"


class RoleOverride(models.Model):
    """Turns one permission of a role on or off for an account and its subtree."""

    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="role_overrides"
    )
    role = models.ForeignKey(
        Role, verbose_name=_("role"), on_delete=models.CASCADE, related_name="overrides"
    )
    permission = models.CharField(_("permission"), max_length=64, choices=Permission.choices)
    enabled = models.BooleanField(_("enabled"), default=False)

    class Meta:
        verbose_name = _("role override")
        verbose_name_plural = _("role overrides")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "role", "permission"], name="course_audit_override_unique"
            )
        ]

    def __str__(self) -> str:
        state = pgettext("permission", "on") if self.enabled else pgettext("permission", "off")
        return f"{self.role}: {self.permission} {state} @ {self.account}"


class Course(models.Model):
    """A course. Every change to one is recorded as ``CourseEvent`` rows."""

    WorkflowState = choices.CourseState

    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.PROTECT, related_name="courses"
    )
    root_account = models.ForeignKey(
        Account,
        verbose_name=_("root account"),
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    name = models.CharField(_("name"), max_length=255)
    course_code = models.CharField(_("course code"), max_length=255, blank=True, default="")
    sis_course_id = models.CharField(  # noqa: DJ001  (NULL: no SIS id, see Account)
        _("SIS course id"), max_length=255, null=True, blank=True
    )
    uuid = models.UUIDField(_("UUID"), default=uuid.uuid4, unique=True, editable=False)
    start_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    conclude_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    is_public = models.BooleanField(_("public"), default=False)
    public_description = models.TextField(_("public description"), blank=True, default="")
    workflow_state = models.CharField(
        _("state"),
        max_length=16,
        choices=WorkflowState.choices,
        default=WorkflowState.UNPUBLISHED,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects: ClassVar[Any] = CourseQuerySet.as_manager()

    class Meta:
        verbose_name = _("course")
        verbose_name_plural = _("courses")
        ordering = ("name", "id")
        # The home page's search lists matches in name order: a broad term reads this
        # index until a page is full. On PostgreSQL, migration 0003 adds trigram indexes
        # for the substring match itself.
        indexes = [models.Index(fields=["name", "id"], name="course_audit_course_name_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "sis_course_id"],
                condition=Q(sis_course_id__isnull=False),
                name="course_audit_course_sis_id_unique_in_root",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the course and record its events in the same transaction."""
        using = kwargs.get("using") or router.db_for_write(Course, instance=self)
        with transaction.atomic(using=using, savepoint=False):
            if recording.database_records(using):
                self._save_recorded_by_database(using, args, kwargs)
                return
            old = None if self._state.adding else recording.lock_snapshots(Course, using, [self.pk])
            before = old.get(self.pk) if old else None
            moved = before is None or before["account_id"] != self.account_id
            self._sync_root_account(moved)
            if self._state.adding:
                recording.stamp_created([self])
            super().save(*args, **kwargs)
            recording.record_save(self, before, kwargs, using)

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Course:
        course = super().from_db(db, field_names, values)
        # What ``save`` compares with to know whether the course moved account.
        course.__dict__["_loaded_account_id"] = course.__dict__.get("account_id")
        return course

    def _save_recorded_by_database(
        self, using: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        loaded = self.__dict__.get("_loaded_account_id")
        moved = self._state.adding or loaded != self.account_id
        self._sync_root_account(moved)
        if self._state.adding:
            recording.stamp_created([self])
        skip = [self.pk] if self.__dict__.pop("_audit_recorded_by_caller", False) else []
        recording.bind_context(using, skip=skip)
        super().save(*args, **kwargs)
        self.__dict__["_loaded_account_id"] = self.account_id
        recording.collect_recorded(using)

    def _sync_root_account(self, moved: bool) -> None:
        if self.account_id is not None and (moved or self.root_account_id is None):
            # (Only when the account changed: reading it costs a query per save.)
            self.root_account_id = self.account.resolved_root_id

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Refuse a hard delete: a course's history must outlive it. Use soft delete."""
        raise models.ProtectedError(
            "Courses are never hard-deleted; use course_audit.services.course_delete().",
            {self},
        )

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.start_at and self.conclude_at and self.conclude_at < self.start_at:
            errors["conclude_at"] = _("The end date must not be before the start date.")
        if self.account_id is not None and self._account_changed():
            account = self.account
            if account.workflow_state == Account.WorkflowState.DELETED:
                errors["account"] = _("A course cannot be placed in a deleted account.")
            elif self.root_account_id and account.resolved_root_id != self.root_account_id:
                errors["account"] = _("A course cannot move to another root account.")
        if errors:
            raise ValidationError(errors)

    def _account_changed(self) -> bool:
        if self._state.adding:
            return True
        return not Course._base_manager.filter(pk=self.pk, account_id=self.account_id).exists()


class SisBatch(models.Model):
    """One run of a SIS import. Every event it records links this batch."""

    class WorkflowState(models.TextChoices):
        CREATED = "created", _("Created")
        IMPORTING = "importing", _("Importing")
        IMPORTED = "imported", _("Imported")
        IMPORTED_WITH_MESSAGES = "imported_with_messages", _("Imported with messages")
        FAILED = "failed", _("Failed")

    root_account = models.ForeignKey(
        Account,
        verbose_name=_("root account"),
        on_delete=models.PROTECT,
        related_name="sis_batches",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    filename = models.CharField(_("file name"), max_length=1024, blank=True)
    workflow_state = models.CharField(
        _("state"), max_length=32, choices=WorkflowState.choices, default=WorkflowState.CREATED
    )
    rows_total = models.PositiveIntegerField(_("rows read"), default=0)
    rows_applied = models.PositiveIntegerField(_("rows applied"), default=0)
    rows_skipped = models.PositiveIntegerField(_("rows skipped"), default=0)
    courses_created = models.PositiveIntegerField(_("courses created"), default=0)
    courses_updated = models.PositiveIntegerField(_("courses changed"), default=0)
    messages = models.JSONField(_("messages"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("SIS batch")
        verbose_name_plural = _("SIS batches")
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return _("SIS import #%(id)s") % {"id": self.pk}


class PageView(models.Model):
    """The HTTP request in which course events were recorded, keyed by its request id."""

    request_id = models.UUIDField(_("request id"), primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    real_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("real user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    context_type = models.CharField(_("context type"), max_length=32, blank=True)
    context_id = models.BigIntegerField(_("context id"), null=True, blank=True)
    url = models.TextField(_("URL"))
    controller = models.CharField(_("controller"), max_length=255, blank=True)
    action = models.CharField(_("action"), max_length=255, blank=True)
    http_method = models.CharField(_("HTTP method"), max_length=16)
    user_agent = models.TextField(_("user agent"), blank=True)
    remote_ip = models.GenericIPAddressField(_("remote IP"), null=True, blank=True)
    render_time = models.FloatField(_("render time (s)"), null=True, blank=True)
    interaction_seconds = models.FloatField(_("interaction seconds"), null=True, blank=True)
    user_request = models.BooleanField(_("user request"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("page view")
        verbose_name_plural = _("page views")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.http_method} {self.url}"


def token_hash(token: str) -> str:
    """What is stored of an API token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def for_plaintext(self, token: str) -> ApiTokenQuerySet:
        return self.filter(token_hash=token_hash(token))


class ApiToken(models.Model):
    """An API access token. Only its SHA-256 is stored; the token is shown once, when issued."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="course_audit_tokens",
    )
    name = models.CharField(_("purpose"), max_length=255, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(_("ends with"), max_length=8, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    # The primary's WAL position after the token's last write (PostgreSQL's ``X/Y``), kept
    # when audit reads go to a standby: the token's next reads must see it (read-your-writes).
    write_lsn = models.CharField(max_length=20, blank=True, default="", editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.user} …{self.hint}"

    @classmethod
    def issue(
        cls,
        *,
        user: User,
        name: str = "",
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns the row and the plaintext token (shown once)."""
        plaintext = secrets.token_urlsafe(48)
        token = cls.objects.create(
            user=user,  # type: ignore[misc]  # the host's user model, unknown to the stubs
            name=name,
            token_hash=token_hash(plaintext),
            hint=plaintext[-4:],
            expires_at=expires_at,
        )
        return token, plaintext

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )


def changed_field_index_name(field: str) -> str:
    """The name of the partial index of the events that changed ``field``."""
    return f"ca_evt_chg_{field}"


class CourseEvent(models.Model):
    """One recorded change to a course. Append-only: the app never updates or deletes one,
    and on PostgreSQL triggers reject any ``UPDATE``, ``DELETE`` or ``TRUNCATE``.

    On PostgreSQL the table is partitioned by month on ``created_at`` (see
    ``course_audit.partitions``); nothing points a foreign key at it and no constraint
    needs a global unique index, which partitioning would not allow.
    """

    EventType = choices.EventType
    EventSource = choices.EventSource

    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(_("UUID"), default=uuid.uuid4, editable=False, db_index=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    course = models.ForeignKey(
        Course,
        verbose_name=_("course"),
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,  # served by the (course, created_at, id) index
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("account at the time"),
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # served by the (account, created_at, id) index
    )
    event_type = models.CharField(_("event type"), max_length=16, choices=EventType.choices)
    event_source = models.CharField(_("source"), max_length=8, choices=EventSource.choices)
    event_data = models.JSONField(_("data"), encoder=DjangoJSONEncoder, default=dict, blank=True)
    related_course = models.ForeignKey(
        Course,
        verbose_name=_("other course"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text=_("The other course of a copy or reset."),
    )
    # Events are immutable, so deleting a user cannot blank this column: the event keeps
    # the id (and ``user_name``) of whoever acted, as Canvas's audit log does.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    user_name = models.CharField(_("user name at the time"), max_length=255, blank=True)
    # Set only when the name is erased (``course_audit_erase_person``): the digest the
    # sealed leaf holds in place of the name (``merkle.user_name_digest``), so the
    # checkpoints still verify. The append-only trigger allows exactly that one change.
    user_name_digest = models.CharField(  # noqa: DJ001  (NULL: the name is still here)
        _("erased user name's digest"), max_length=64, null=True, blank=True, editable=False
    )
    # The request id of the HTTP request the event was recorded in. The page view row is
    # written when the response goes out, so this is a plain column, not a constraint.
    page_view = models.ForeignKey(
        PageView,
        verbose_name=_("page view"),
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_column="request_id",
        db_index=False,
        related_name="+",
    )
    sis_batch = models.ForeignKey(
        SisBatch,
        verbose_name=_("SIS batch"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
    )
    # A change made outside the app (raw SQL, psql, another program; PostgreSQL records
    # those by trigger) keeps who made it as the database saw it.
    db_role = models.CharField(
        _("database role"), max_length=63, blank=True, default="", db_default=""
    )
    db_application = models.CharField(
        _("database application"), max_length=64, blank=True, default="", db_default=""
    )
    db_client_addr = models.GenericIPAddressField(_("database client"), null=True, blank=True)
    # Set only for an event a backfill dated (``audit_context(occurred_at=...)``): when it
    # was really recorded. Sealed with it: verification reports such an event, older than
    # the checkpoints before it, as a backfill rather than as backdated.
    recorded_at = models.DateTimeField(
        _("recorded at (backfill)"), null=True, blank=True, editable=False
    )

    objects = CourseEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("course event")
        verbose_name_plural = _("course events")
        ordering = ("-created_at", "-id")
        indexes = [
            # A course's pages; its chart counts the newest events by type from this index
            # alone (``selectors.newest_day_counts``), without reading their rows.
            models.Index(
                fields=["course", "-created_at", "-id"],
                include=["event_type"],
                name="course_audit_evt_course_idx",
            ),
            models.Index(
                fields=["account", "-created_at", "-id"], name="course_audit_evt_account_idx"
            ),
            # The admin changelist: every event, newest first, and its event type filter
            # (a rare type would otherwise read the whole table to fill a page).
            models.Index(fields=["-created_at", "-id"], name="course_audit_evt_created_idx"),
            models.Index(
                fields=["event_type", "-created_at", "-id"], name="course_audit_evt_type_idx"
            ),
            models.Index(
                fields=["event_source", "-created_at", "-id"], name="course_audit_evt_source_idx"
            ),
            # A person's page: every event one user caused, newest first (most events have
            # a user; those of the system and of other programs do not).
            models.Index(
                fields=["user", "-created_at", "-id"],
                name="course_audit_evt_user_idx",
                condition=Q(user__isnull=False),
            ),
            # A SIS batch's changes (its page, and the listings' ``sis_batch_id`` filter).
            models.Index(
                fields=["sis_batch", "-created_at", "-id"],
                condition=Q(sis_batch__isnull=False),
                name="course_audit_evt_sis_batch_idx",
            ),
            # The listings' ``field`` filter: one partial index per tracked field, holding
            # only the updated events that changed it (``querysets.changed_field_q``), in
            # each account's order. Several fields are read as the union of their ranges
            # (``pagination.fetch_ordered``'s ``branches``).
            *(
                models.Index(
                    fields=["account", "-created_at", "-id"],
                    condition=Q(event_type=choices.EventType.UPDATED, event_data__has_key=field),
                    name=changed_field_index_name(field),
                )
                for field in TRACKED_FIELDS
            ),
        ]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.get_event_type_display()} {self.course_id} @ {when}"

    @property
    def request_id(self) -> UUID | None:
        return self.page_view_id

    @property
    def outside_app(self) -> bool:
        """Whether the change was made outside the app (no app context: see ``db_role``)."""
        return bool(self.db_role)


class Checkpoint(models.Model):
    """A signed seal over the events with ids in ``(after_id, last_id]``: their count and
    RFC 6962 Merkle root, chained to the previous checkpoint by its hash. Append-only: on
    PostgreSQL a trigger rejects ``UPDATE`` and ``DELETE``. See ``course_audit.integrity``.

    ``leaves`` holds, per sealed event in id order, its id (8 bytes, big-endian), UUID (16)
    and leaf hash (32): authenticated by the signed root, it lets verification name the
    event that changed and a proof be made without reading the events again.
    """

    sequence = models.PositiveBigIntegerField(_("sequence"), unique=True)
    after_id = models.BigIntegerField(_("after event id"), unique=True)
    first_id = models.BigIntegerField(_("first event id"), null=True, blank=True)
    last_id = models.BigIntegerField(_("last event id"))
    count = models.PositiveBigIntegerField(_("events"))
    root = models.CharField(_("Merkle root"), max_length=64)
    previous = models.CharField(_("previous checkpoint's hash"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created at"))
    key_id = models.CharField(_("key id"), max_length=64)
    public_key = models.CharField(_("public key"), max_length=64)
    signature = models.CharField(_("signature"), max_length=128)
    hash = models.CharField(_("hash"), max_length=64, unique=True)
    leaves = models.BinaryField(_("sealed leaves"), editable=False)

    class Meta:
        verbose_name = _("checkpoint")
        verbose_name_plural = _("checkpoints")
        ordering = ("sequence",)

    def __str__(self) -> str:
        return _("Checkpoint #%(sequence)s") % {"sequence": self.sequence}


class LegalHold(models.Model):
    """A legal hold on a course or an account (and every account below it): no month that
    holds any of their events is pruned while the hold is active (not released).

    Who set it, when and why stay on the row; releasing one records who and when, and it
    stops keeping months from the next prune on.
    """

    course = models.ForeignKey(
        Course,
        verbose_name=_("course"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="legal_holds",
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="legal_holds",
        help_text=_("The hold covers the courses of this account and of every account below it."),
    )
    reason = models.TextField(_("reason"))
    created_at = models.DateTimeField(_("set at"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("set by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("released by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("legal hold")
        verbose_name_plural = _("legal holds")
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=Q(course__isnull=False, account__isnull=True)
                | Q(course__isnull=True, account__isnull=False),
                name="course_audit_hold_course_xor_account",
                violation_error_message=_("A legal hold is on a course or on an account."),
            ),
        ]

    def __str__(self) -> str:
        target = (
            _("course %(id)s") % {"id": self.course_id}
            if self.course_id
            else _("account %(id)s") % {"id": self.account_id}
        )
        return _("Legal hold #%(id)s on %(target)s") % {"id": self.pk, "target": target}

    @property
    def active(self) -> bool:
        return self.released_at is None


class PruneNote(models.Model):
    """What ``course_audit_partitions --prune`` dropped: one month (a partition) of events,
    the id runs it held, and the sealed archive it was written to first, signed like a
    checkpoint. Verification accepts exactly the sealed events these runs name as gone.
    Append-only: on PostgreSQL a trigger rejects ``UPDATE`` and ``DELETE``.

    ``manifest`` is the signed document itself (canonical JSON), kept byte for byte; the
    other columns repeat some of its fields for queries.
    """

    month = models.DateTimeField(_("month"))
    partition = models.CharField(_("partition"), max_length=63)
    count = models.PositiveBigIntegerField(_("events"))
    archive = models.CharField(_("archive"), max_length=255)
    created_at = models.DateTimeField(_("created at"))
    manifest = models.TextField(_("manifest"))
    key_id = models.CharField(_("key id"), max_length=64, blank=True)
    signature = models.CharField(_("signature"), max_length=128, blank=True)
    hash = models.CharField(_("hash"), max_length=64, unique=True)

    class Meta:
        verbose_name = _("prune note")
        verbose_name_plural = _("prune notes")
        ordering = ("month", "created_at")

    def __str__(self) -> str:
        return _("%(partition)s pruned %(when)s") % {
            "partition": self.partition,
            "when": f"{self.created_at:%Y-%m-%d %H:%M}",
        }


class ExportJob(models.Model):
    """A big export, written in the background by the task worker (``course_audit.tasks``):
    what was asked (scope, filters, format, time zone), how far it got, and the file it made
    (in ``COURSE_AUDIT_EXPORT_STORAGE``) with its manifest beside it.

    A job is its requester's: only they (and superusers) see it, its progress and its file.
    """

    class Scope(models.TextChoices):
        COURSE = "course", _("course")
        ACCOUNT = "account", _("account")
        PERSON = "person", _("person")
        SIS_BATCH = "sis_batch", _("SIS import")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    # States a job does not leave.
    FINISHED = (State.DONE, State.FAILED, State.CANCELLED)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.CASCADE,
        related_name="course_audit_export_jobs",
    )
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices)
    # The course's or account's id, or the person's (a user model's key, as text).
    scope_id = models.CharField(_("scope id"), max_length=64)
    include_subaccounts = models.BooleanField(_("with sub-accounts"), default=False)
    # The course's, account's or person's name when the job was asked for (as the events keep
    # their actor's): what the job's pages call it.
    subject_name = models.CharField(_("name"), max_length=255, blank=True)
    # The page's filters, as the API's parameters (``CourseEventFilterSet``'s data).
    filters = models.JSONField(_("filters"), default=dict, encoder=DjangoJSONEncoder, blank=True)
    # The viewer's time zone: dates in the filters and in the file are read and written in it.
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    format = models.CharField(_("format"), max_length=5, choices=Format.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    rows_written = models.BigIntegerField(_("rows written"), default=0)
    rows_total = models.BigIntegerField(_("rows expected"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    file_name = models.CharField(_("file"), max_length=255, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # The worker's last sign of life (each chunk written).
    heartbeat_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    # The request that asked for the job: the task's access record names it.
    request_id = models.UUIDField(_("request id"), null=True, blank=True)
    client_addr = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    class Meta:
        verbose_name = _("export job")
        verbose_name_plural = _("export jobs")
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["requested_by", "-created_at"], name="course_audit_job_user_idx")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.scope_id} ({self.format}, {self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def manifest_name(self) -> str:
        return f"{self.file_name}.manifest.json" if self.file_name else ""

    @property
    def percent(self) -> int | None:
        if not self.rows_total:
            return None
        return min(100, self.rows_written * 100 // self.rows_total)


class AccessRecord(models.Model):
    """One read of audit data: who read which scope with which filters, how many events
    the answer held, and from which request (``course_audit.access_log`` writes them).

    Append-only like the events: on PostgreSQL the table is partitioned by month on
    ``created_at`` (``course_audit.partitions.ACCESS_RECORDS``), triggers reject ``UPDATE``,
    ``DELETE`` and ``TRUNCATE``, and months leave whole, by their own retention
    (``COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS``). Nothing is a constraint: a record
    outlives the user, token or account it names.
    """

    Surface = choices.AccessSurface
    Scope = choices.AccessScope

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(_("read at"), default=timezone.now, editable=False)
    # The tenant whose data was read; empty for a read across tenants (a superuser's).
    root_account = models.ForeignKey(
        Account,
        verbose_name=_("root account"),
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # served by the (root_account, created_at, id) index
        related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    user_name = models.CharField(_("user name at the time"), max_length=255, blank=True)
    api_token = models.ForeignKey(
        ApiToken,
        verbose_name=_("API token"),
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    surface = models.CharField(_("surface"), max_length=8, choices=Surface.choices)
    scope = models.CharField(_("scope"), max_length=16, choices=Scope.choices)
    scope_id = models.CharField(_("scope id"), max_length=64, blank=True)
    filters = models.JSONField(_("filters"), encoder=DjangoJSONEncoder, default=dict, blank=True)
    count = models.PositiveBigIntegerField(_("events"))
    complete = models.BooleanField(
        _("complete"),
        default=True,
        help_text=_("False for an export cut short: the count is what was sent."),
    )
    request_id = models.UUIDField(_("request id"), null=True, blank=True)
    http_method = models.CharField(_("HTTP method"), max_length=16)
    path = models.TextField(_("path"))
    client_addr = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    class Meta:
        verbose_name = _("access record")
        verbose_name_plural = _("access records")
        ordering = ("-created_at", "-id")
        indexes = [
            # The access log page: a tenant's records, newest first, and its "who" filter.
            models.Index(
                fields=["root_account", "-created_at", "-id"], name="course_audit_acc_root_idx"
            ),
            models.Index(
                fields=["root_account", "user_name", "-created_at", "-id"],
                name="course_audit_acc_user_idx",
            ),
            # The admin's list of every tenant's records.
            models.Index(fields=["-created_at", "-id"], name="course_audit_acc_created_idx"),
        ]

    def __str__(self) -> str:
        return _("%(user)s read %(scope)s %(id)s at %(when)s") % {
            "user": self.user_name or "—",
            "scope": self.get_scope_display(),
            "id": self.scope_id,
            "when": f"{self.created_at:%Y-%m-%d %H:%M:%S}",
        }
