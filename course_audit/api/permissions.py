"""Object-level access for the API: DRF's side of ``selectors.account_access``."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from course_audit.models import Account
from course_audit.selectors import Access, account_access


class AccountGrantPermission(permissions.BasePermission):
    """Authenticated callers; the object check needs ``view.required_permission`` on the
    object's account. The grants are loaded once per request (one query)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        account = obj if isinstance(obj, Account) else obj.account
        access = account_access(request, account, view.required_permission)
        if access is Access.NOT_FOUND:
            raise exceptions.NotFound()
        return access is Access.ALLOWED
