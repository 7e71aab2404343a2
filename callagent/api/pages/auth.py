"""Who is signed in to the dashboard, CSRF and login throttling (docs/dashboard.md, "Login").

The pages authenticate with a session cookie only, the REST API with bearer keys only:

- the cookie is scoped to ``/dashboard`` (the browser never sends it to ``/api``), and the API's
  guard reads nothing but ``Authorization``: a cookie-authenticated API would be open to
  cross-site requests from any page the user visits, since browsers attach cookies by themselves;
- the pages never read ``Authorization``: a leaked API key must not open the pages, where a
  person's account (and its disabling) is the unit of access.
"""

from __future__ import annotations

import collections
import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from callagent.api.state import ApiState
from callagent.store.errors import Unauthorized
from callagent.store.services import users

SESSION_COOKIE = "callagent_session"
LOGIN_COOKIE = "callagent_login"
"""The login form's own CSRF secret (double submit): there is no session yet to hold one."""
COOKIE_PATH = "/dashboard"
CSRF_FIELD = "csrf_token"
_STATE_KEY = "callagent_signed_in"


class LoginRequired(Exception):
    """No valid session: the page redirects to the login form."""


class CsrfRefused(Exception):
    """A form came back without this session's CSRF token: refused with 403."""


@dataclass(frozen=True)
class DashboardConfig:
    """How the dashboard's cookies are set. ``secure_cookies``: ``True`` always marks them
    Secure, ``False`` never, ``None`` (default) when the request came over https (uvicorn
    reports the scheme a reverse proxy forwarded when told to trust it)."""

    secure_cookies: bool | None = None
    max_failures: int = 5
    """Failed sign-ins allowed per e-mail address and per remote address in ``window_s``."""
    window_s: float = 900.0


def cookie_secure(config: DashboardConfig, request: Request[Any, Any, Any]) -> bool:
    """Whether this response's cookies carry the Secure attribute."""
    if config.secure_cookies is not None:
        return config.secure_cookies
    return request.url.scheme == "https"


def new_login_secret() -> str:
    """A fresh secret for the login form and its cookie."""
    return secrets.token_urlsafe(32)


@dataclass
class LoginThrottle:
    """Failed sign-ins counted per e-mail address and per remote address over a sliding window;
    past ``max_failures`` the form refuses without checking the password. In this node's memory
    only: it slows a guesser down, while argon2's cost per guess (docs/dashboard.md) is what
    makes guessing slow everywhere."""

    max_failures: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, collections.deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> collections.deque[float]:
        stamps = self._failures.setdefault(key, collections.deque())
        horizon = self.clock() - self.window_s
        while stamps and stamps[0] < horizon:
            stamps.popleft()
        return stamps

    def blocked(self, *keys: str) -> bool:
        """Whether any of ``keys`` has used up its failures."""
        return any(len(self._recent(key)) >= self.max_failures for key in keys)

    def failed(self, *keys: str) -> None:
        """Count a failure against each of ``keys``."""
        if len(self._failures) > 10_000:  # bounded memory whatever a guesser sends
            self._failures.clear()
        for key in keys:
            self._recent(key).append(self.clock())

    def succeeded(self, key: str) -> None:
        """A right password clears its address's count."""
        self._failures.pop(key, None)


def session_guard(api: ApiState) -> Callable[..., Any]:
    """A guard: the request's session cookie must name a live session; the page's handler
    then finds it with :func:`signed_in`. Handlers with ``opt={"public": True}`` are open."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if handler.opt.get("public"):
            return
        token = connection.cookies.get(SESSION_COOKIE, "")
        try:
            who = await users.session_user(api.db, token, api.clock())
        except Unauthorized:
            raise LoginRequired from None
        connection.scope["state"][_STATE_KEY] = who

    return guard


def signed_in(request: Request[Any, Any, Any]) -> users.SignedIn:
    """The session the guard checked."""
    who = request.scope["state"].get(_STATE_KEY)
    if not isinstance(who, users.SignedIn):  # a page outside the guarded router: a bug
        raise RuntimeError("signed_in needs session_guard on the route")
    return who


async def check_csrf(request: Request[Any, Any, Any]) -> None:
    """Every form a signed-in page sends back carries the session's CSRF token (a hidden
    field, or the ``X-CSRF-Token`` header). Runs before each unsafe request's handler, so no
    handler can forget it. The form is parsed once and cached for the handler."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    route = request.scope.get("route_handler")
    if route is not None and route.opt.get("public"):
        return  # the login form checks its own double-submit secret
    who = signed_in(request)
    form = await request.form()
    given = str(form.get(CSRF_FIELD) or request.headers.get("x-csrf-token") or "")
    if not given or not users.same_secret(given, who.csrf_token):
        raise CsrfRefused


def expiry_seconds(expires_at: dt.datetime, now: dt.datetime) -> int:
    """The cookie's Max-Age for a session ending at ``expires_at``."""
    return max(0, int((expires_at - now).total_seconds()))


def set_session_cookie(
    response: Response[Any],
    session: users.NewSession,
    config: DashboardConfig,
    request: Request[Any, Any, Any],
    now: dt.datetime,
) -> None:
    """Sign the browser in: the session cookie, HttpOnly, SameSite=Lax, Secure behind HTTPS,
    ending with the session (docs/dashboard.md, "Login, sessions and CSRF")."""
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(config, request),
        max_age=expiry_seconds(session.expires_at, now),
    )
