"""Types at the seams where a host's objects come in.

``User`` is what the app asks of a user: the host's ``AUTH_USER_MODEL`` (any model built on
``AbstractBaseUser`` with ``PermissionsMixin``'s ``is_superuser``) or Django's
``AnonymousUser``. A protocol, not a class: the app never names the host's model.
"""

from __future__ import annotations

from typing import Any, Protocol


class User(Protocol):
    @property
    def pk(self) -> Any: ...

    @property
    def is_active(self) -> bool: ...

    @property
    def is_authenticated(self) -> bool: ...

    @property
    def is_superuser(self) -> bool: ...

    def get_username(self) -> str: ...


class UserRequest(Protocol):
    """A Django ``HttpRequest`` or a DRF ``Request`` (which wraps one): what the access
    rule reads of a request."""

    @property
    def user(self) -> Any: ...
