from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from apps.core import context
from apps.core.middleware import client_ip
from apps.users.tokens import token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer icc_<prefix>_<secret>``; a bad, expired or revoked token is a 401."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header: expected 'Bearer <token>'.")
        found = token_authenticate(parts[1], client_ip(request._request))
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        context.bind(user=found[0], source="api")
        return found

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
