"""Errors to HTTP, in one place (DESIGN.md practice 10; docs/api.md "Conventions").

Every error body has the same shape (:class:`ErrorBody`): a stable ``error`` code, a
human ``detail``, and for bad input the ``field`` and the ``reason``. Services raise domain
errors; Litestar raises its own for undecodable bodies, bad query parameters, unknown routes
and oversized bodies; both end up here. Anything else is a bug: a 500 that says nothing
internal, logged here with its traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from callagent.store.errors import (
    CallRefused,
    Conflict,
    DomainError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from callagent.telephony.admission import AtCapacity

log = logging.getLogger(__name__)


class FieldError(msgspec.Struct):
    """One invalid field."""

    field: str
    reason: str
    source: str = "body"


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error response."""

    status_code: int
    error: str
    detail: str
    field: str | None = None
    reason: str | None = None
    errors: list[FieldError] | None = None


_STATUS: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (ValidationFailed, 400),
    (CallRefused, 409),
    (Conflict, 409),
    (Unauthorized, 401),
    (AtCapacity, 503),
]

RETRY_AFTER_S = 30
"""What a 503 at capacity tells the client to wait: about one short call's length."""


def _respond(body: ErrorBody, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=msgspec.to_builtins(body), status_code=body.status_code, headers=headers
    )


def _invalid(errors: list[FieldError]) -> Response[Any]:
    """A 400 ``validation_error`` naming the first field at fault, with every one listed: the
    same body whether a service, msgspec or Litestar found the fault."""
    first = errors[0]
    return _respond(
        ErrorBody(
            status_code=400,
            error="validation_error",
            detail=f"{first.field}: {first.reason}",
            field=first.field,
            reason=first.reason,
            errors=errors,
        )
    )


def domain_error_handler(_request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    """A service's error as its HTTP status."""
    if isinstance(error, ValidationFailed):
        return _invalid([FieldError(field=error.field, reason=error.reason)])
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
    body = ErrorBody(status_code=status, error=error.code, detail=error.detail)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return _respond(body, headers)


# msgspec says where a value failed as "... - at `$.a.b[0]`"; Litestar passes that path as the
# key, or "data" for the body's root, where the field is named in the message instead.
_AT = re.compile(r"\s*-\s*at\s*`\$\.?([^`]*)`\s*$")
_NAMED = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def _field_error(item: Any) -> FieldError:
    if not isinstance(item, dict):
        return FieldError(field="body", reason=str(item))
    message = str(item.get("message", "invalid"))
    key = item.get("key")
    source = str(item.get("source") or "body")
    found = _AT.search(message)
    if found:
        message = message[: found.start()]
        key = found.group(1) or key
    if key == "data" and source == "body":
        key = None
    named = _NAMED.search(message)
    if named:
        key = f"{key}.{named.group(1)}" if key else named.group(1)
        message = "required" if "missing" in message else "unknown field"
    return FieldError(field=str(key or "body"), reason=message.strip(), source=source)


def validation_handler(
    _request: Request[Any, Any, Any], error: ValidationException
) -> Response[Any]:
    """Litestar's decode/parameter errors, reshaped to name the field and the reason."""
    extra = error.extra if isinstance(error.extra, list) else [error.extra] if error.extra else []
    errors = [_field_error(item) for item in extra] or [
        FieldError(field="body", reason=str(error.detail))
    ]
    return _invalid(errors)


_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


SERVER_ERROR_DETAIL = "internal server error"
"""All a client learns of a 500: what went wrong is in the server's log, with its traceback."""


def server_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Anything no other handler maps is a bug: log it with its traceback (Litestar logs
    nothing outside debug mode) and answer a 500 that tells nothing internal - an exception's
    text can carry SQL, paths or secrets."""
    log.error("server error on %s %s", request.method, request.url.path, exc_info=error)
    return _respond(ErrorBody(status_code=500, error="server_error", detail=SERVER_ERROR_DETAIL))


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    """Litestar's other HTTP errors (unknown route, wrong method, body too large)."""
    status = error.status_code
    if status >= 500:
        return server_error_handler(request, error)
    if status == 400:  # e.g. a body that is not JSON at all
        return _invalid([FieldError(field="body", reason=str(error.detail))])
    return _respond(
        ErrorBody(
            status_code=status,
            error=_HTTP_CODES.get(status, "error"),
            detail=str(error.detail),
        ),
        dict(error.headers) if error.headers else None,
    )


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    DomainError: domain_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_error_handler,
    Exception: server_error_handler,
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI descriptions of a route's error responses."""
    text = {
        400: "Invalid input: the body names the field and the reason",
        401: "Missing, unknown or revoked API key",
        404: "Not found (another client's resource is not found either)",
        409: "Conflicts with the current state (illegal transition, duplicate, refused call)",
        413: "Body too large",
        503: "This node carries as many calls as it may (routing.max_active_calls); retry later",
    }
    return {
        status: ResponseSpec(data_container=ErrorBody, description=text[status])
        for status in statuses
    }
