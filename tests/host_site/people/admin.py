from __future__ import annotations

from django.contrib import admin

from people.models import Member


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ("email", "full_name", "is_staff")
    search_fields = ("email", "full_name")
    exclude = ("password",)
