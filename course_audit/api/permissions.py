"""Object-level access for the API: 404 outside the caller's tenants, 403 without the grant."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from course_audit.models import Account
from course_audit.selectors import Grants, load_grants


class AccountGrantPermission(permissions.BasePermission):
    """Authenticated callers; the object check needs ``view.required_permission`` on the
    object's account. The grants are loaded once per request (one query)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        account = obj if isinstance(obj, Account) else obj.account
        grants = grants_for(request, view.required_permission)
        if not grants.is_member(account.resolved_root_id):
            # Another tenant's object: do not even confirm that it exists.
            raise exceptions.NotFound()
        return grants.allows(account)


def grants_for(request: Request, permission: str) -> Grants:
    cache: dict[str, Grants] = request.__dict__.setdefault("_course_audit_grants", {})
    if permission not in cache:
        cache[permission] = load_grants(request.user, permission)
    return cache[permission]
