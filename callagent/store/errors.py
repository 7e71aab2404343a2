"""Domain errors of the store's services.

The API maps each class to one HTTP status in one place (``callagent/api/errors.py``), so a
service never thinks about HTTP and a controller never catches anything (DESIGN.md practice 10;
the table of statuses is in docs/api.md, "Conventions").
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose. ``code`` is stable for clients."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The resource does not exist *for this client*: another client's row is just as absent."""

    code = "not_found"


class ValidationFailed(DomainError):
    """Input that parses but is not acceptable; names the field and the reason."""

    code = "validation_error"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


NUL_REASON = "contains a NUL character (\\u0000)"
"""Why text holding U+0000 is refused, wherever it comes from: PostgreSQL stores no NUL in
text or ``jsonb``, so the API refuses it up front, naming the field (docs/api.md)."""


class Conflict(DomainError):
    """The request clashes with the current state (a second agent, a duplicate phone number)."""

    code = "conflict"


class IllegalTransition(Conflict):
    """A status change the transition table forbids."""

    code = "illegal_transition"


class CallRefused(Conflict):
    """``start-call`` refused on purpose: agent not trained, do-not-call, outside hours."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class Unauthorized(DomainError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthorized"
