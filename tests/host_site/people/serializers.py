"""How the site shows its people in course_audit's ``linked.users``."""

from __future__ import annotations

from rest_framework import serializers

from people.models import Member


class AuditUserSerializer(serializers.ModelSerializer):
    # Canvas's user fields, from the site's own; ids stay strings, as in the rest of linked.
    id = serializers.CharField(source="pk")
    name = serializers.CharField(source="full_name")
    sortable_name = serializers.CharField(source="full_name")
    short_name = serializers.CharField(source="get_short_name")
    created_at = serializers.DateTimeField(source="joined_on")
    login_id = serializers.EmailField(source="email")

    class Meta:
        model = Member
        fields = ["id", "name", "sortable_name", "short_name", "created_at", "login_id"]
