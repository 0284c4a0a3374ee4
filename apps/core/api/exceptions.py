"""One exception handler for the whole API: every error is JSON that names the field at fault.

Body: ``{"error": {"status", "code", "message", "fields": {"<field>": ["..."]}}, "request_id"}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core import context
from apps.core.api.anonymous import count_anonymous
from apps.core.errors import DomainError, ForbiddenError

logger = logging.getLogger(__name__)


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF error details as ``{"field.sub": ["message", ...]}``; non-field errors under ``non_field_errors``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                out.update(_flatten(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _body(status_code: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "error": {"status": status_code, "code": code, "message": message, "fields": fields or {}},
        "request_id": context.current().request_id,
    }


def _anonymous(request: Any) -> bool:
    """No credentials at all: no Authorization header and no signed-in session."""
    if request is None or request.headers.get("Authorization"):
        return False
    return not getattr(request.user, "is_authenticated", False)


def exception_handler(exc: Exception, ctx: dict[str, Any]) -> Response | None:
    anonymous = _anonymous(ctx.get("request"))
    if anonymous and _refusal(exc):
        # Anonymous first: whatever a view found (or did not), a caller without credentials only learns "401".
        exc = exceptions.NotAuthenticated()
        exc.auth_header = "Bearer"  # type: ignore[attr-defined]
    if isinstance(exc, DomainError):
        if isinstance(exc, ForbiddenError):
            _announce_denied(exc.message, ctx)  # a service's refusal of a signed-in principal is audited too
        fields = {exc.field: [exc.message]} if exc.field else {}
        return Response(_body(exc.status, exc.code, exc.message, fields), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, ctx)
    if response is None:
        return None  # an unexpected error: Django's 500 handling and logging take over
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        names = ", ".join(sorted(fields))
        response.data = _body(response.status_code, "invalid", f"Invalid input: {names}.", fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = _body(response.status_code, "parse_error", str(exc.detail), {"body": [str(exc.detail)]})
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        message = f"{exc.detail} Send Content-Type: application/json."
        response.data = _body(response.status_code, "unsupported_media_type", message, {"Content-Type": [message]})
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = _body(response.status_code, code, str(exc.detail))
    _record_refusal(exc, ctx, anonymous=anonymous)
    if response.status_code == status.HTTP_401_UNAUTHORIZED or response.status_code >= 500:
        logger.info("API error %s: %s", response.status_code, response.data["error"]["message"])
    return response


def _record_refusal(exc: exceptions.APIException, ctx: dict[str, Any], *, anonymous: bool) -> None:
    """Refusals of principals are audited; anonymous ones are only counted, so noise cannot flood the chain."""
    if anonymous and isinstance(exc, exceptions.NotAuthenticated):
        count_anonymous(ctx["request"]._request)
    elif isinstance(exc, (exceptions.PermissionDenied, exceptions.NotAuthenticated)) or (
        isinstance(exc, exceptions.NotFound) and _exists_but_hidden(ctx)
    ):
        _announce_denied(str(exc.detail), ctx)


def _refusal(exc: Exception) -> bool:
    """An error that answers the caller (4xx), not a server fault; throttling stays visible as 429."""
    if isinstance(exc, DomainError):
        return exc.status < 500
    if isinstance(exc, (DjangoValidationError, Http404, PermissionDenied)):
        return True
    return (
        isinstance(exc, exceptions.APIException)
        and not isinstance(exc, exceptions.Throttled)
        and (400 <= exc.status_code < 500)
    )


def _announce_denied(message: str, ctx: dict[str, Any]) -> None:
    from apps.core.signals import access_denied

    view, request = ctx.get("view"), ctx.get("request")
    basename = getattr(view, "basename", None) or type(view).__name__
    action = getattr(view, "action", None) or (request.method.lower() if request else "request")
    access_denied.send(
        sender=type(view),
        action=f"api.{basename}.{action}",
        target_id=str((ctx.get("kwargs") or {}).get("pk", "")),
        message=message,
        path=request.path if request else "",
    )


def _exists_but_hidden(ctx: dict[str, Any]) -> bool:
    """A 404 for an object that exists is a refusal in disguise (restrict() hid it): audit it as denied."""
    view, pk = ctx.get("view"), (ctx.get("kwargs") or {}).get("pk")
    serializer_class = getattr(view, "serializer_class", None)
    model = getattr(getattr(serializer_class, "Meta", None), "model", None)
    if model is None or pk is None:
        return False
    try:
        return bool(model._default_manager.filter(pk=pk).exists())
    except (ValueError, TypeError):
        return False
