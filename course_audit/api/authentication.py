"""``Authorization: Bearer <token>`` against course_audit's hashed API tokens."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from course_audit.models import ApiToken

# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION_SECONDS = 60


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid access token.")
        try:
            plaintext = header[1].decode()
        except UnicodeError as error:
            raise exceptions.AuthenticationFailed("Invalid access token.") from error
        token = ApiToken.objects.usable().for_plaintext(plaintext).select_related("user").first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid access token.")
        now = timezone.now()
        if (
            token.last_used_at is None
            or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
        ):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="course_audit"'
