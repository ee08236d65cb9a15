"""The Django admin for course_audit.

Course events are read-only for everyone. Courses are never hard-deleted: deleting one in
the admin is a soft delete through the service, recorded like any other change.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from course_audit import services
from course_audit.models import (
    Account,
    AccountMembership,
    ApiToken,
    Course,
    CourseEvent,
    PageView,
    Role,
    RoleOverride,
    SisBatch,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that are records of what happened: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "sis_account_id", "parent", "root_account", "workflow_state")
    list_filter = ("workflow_state",)
    search_fields = ("name", "sis_account_id")
    list_select_related = ("parent", "root_account")
    autocomplete_fields = ("parent",)


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ("name", "root_account", "view_course_changes", "manage_courses")
    list_select_related = ("root_account",)


@admin.register(AccountMembership)
class AccountMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "account", "role", "workflow_state", "created_at")
    list_filter = ("workflow_state", "role")
    list_select_related = ("user", "account", "role")
    autocomplete_fields = ("account",)
    raw_id_fields = ("user",)


@admin.register(RoleOverride)
class RoleOverrideAdmin(admin.ModelAdmin):
    list_display = ("role", "permission", "enabled", "account")
    list_select_related = ("role", "account")
    autocomplete_fields = ("account",)


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "course_code",
        "sis_course_id",
        "account",
        "workflow_state",
        "updated_at",
    )
    list_filter = ("workflow_state", "is_public")
    search_fields = ("name", "course_code", "sis_course_id")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    readonly_fields = ("uuid", "root_account", "created_at", "updated_at")
    actions = ("soft_delete",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(
        description=_("Delete selected courses (soft delete, recorded)"), permissions=["change"]
    )
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Course]) -> None:
        count = 0
        for course in queryset:
            services.course_delete(course=course, user=request.user)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d course deleted.", "%(count)d courses deleted.", count)
            % {"count": count},
            messages.SUCCESS,
        )


@admin.register(CourseEvent)
class CourseEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event_type", "event_source", "course", "user_name")
    list_filter = ("event_type", "event_source")
    list_select_related = ("course",)
    search_fields = ("course__name", "course__course_code", "course__sis_course_id", "user_name")
    show_full_result_count = False


@admin.register(SisBatch)
class SisBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "root_account",
        "filename",
        "workflow_state",
        "rows_applied",
        "rows_skipped",
        "created_at",
    )
    list_filter = ("workflow_state",)
    list_select_related = ("root_account",)


@admin.register(PageView)
class PageViewAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "http_method", "url", "user", "render_time")
    list_filter = ("http_method",)
    list_select_related = ("user",)
    search_fields = ("=request_id", "url")
    show_full_result_count = False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "name",
        "hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("hint", "created_at", "last_used_at")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Tokens are issued with `manage.py create_api_token`, which shows the secret once.
        return False

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request,
            ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )
