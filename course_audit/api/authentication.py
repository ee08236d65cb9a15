"""``Authorization: Bearer <token>`` against course_audit's hashed API tokens.

One query finds the token, its user and (on PostgreSQL and SQLite) the user's grants for
the permission the view needs (``selectors.grants_sql``), which it keeps as the request's
grants: a listing's request then needs no query of its own to decide access. Nothing is
kept beyond the request, so a revoked token or grant takes effect on the very next one.
"""

from __future__ import annotations

import functools
import json
from typing import Any, cast

from django.db import connections, router
from django.db.models import Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from course_audit import replication, selectors
from course_audit.compiled import CompiledLookup
from course_audit.models import ApiToken, token_hash

# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION_SECONDS = 60
_GRANTS = "course_audit_grants"


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
        permission = _view_permission(request)
        using = router.db_for_read(ApiToken)
        token = cast(ApiToken | None, _token_lookup(permission).get(using, token_hash(plaintext)))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid access token.")
        grants = getattr(token, _GRANTS, None)
        # A superuser's grants need no query (``load_grants``): nothing to keep.
        if grants is not None and permission is not None and not token.user.is_superuser:
            if isinstance(grants, str):  # SQLite hands JSON over as text, psycopg decoded
                grants = json.loads(grants)
            selectors.remember_grants(
                request, permission, token.user, selectors.grants_from_rows(grants)
            )
        now = timezone.now()
        # In read-only mode (the primary away) nothing can be written.
        if not replication.read_only() and (
            token.last_used_at is None
            or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
        ):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="course_audit"'


def _usable_tokens(digest: str, *, using: str, permission: str | None) -> QuerySet[ApiToken]:
    """The usable token whose hash is ``digest``, with its user and, on a database whose JSON
    aggregate ``selectors.grants_sql`` knows, the user's grants for ``permission``.

    Expiry is compared with the database's clock (``Now()``), so that the query has no
    value of its own: it is compiled once (``_token_lookup``).
    """
    tokens = ApiToken.objects.filter(token_hash=digest, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=Now())
    )
    tokens = tokens.select_related("user")
    if permission is not None:
        connection = connections[using]
        qn = connection.ops.quote_name
        user_column = ApiToken._meta.get_field("user").column
        sql = selectors.grants_sql(
            connection, permission, f"{qn(ApiToken._meta.db_table)}.{qn(user_column)}"
        )
        if sql is not None:
            tokens = tokens.annotate(**{_GRANTS: RawSQL(sql, (), output_field=TextField())})
    return tokens


@functools.cache
def _token_lookup(permission: str | None) -> CompiledLookup:
    return CompiledLookup(
        functools.partial(_usable_tokens, permission=permission),
        stand_ins=["course-audit-token-hash"],
    )


def _view_permission(request: Request) -> str | None:
    """The permission the view serving ``request`` checks (``required_permission``)."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    return getattr(view, "required_permission", None)
