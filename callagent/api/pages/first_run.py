"""The first start (docs/dashboard.md, "First start"): an installation with no dashboard user
yet is set up from the browser through a one-time link that ``callagent serve`` prints.

There is never a default password. The link's token (256 random bits) lives in this process's
memory only: whoever can read the terminal or the service log that printed it may create the
first client and its first user, and nobody else. It stops working as soon as any user exists
(also one made with ``callagent users create``), after it has been used once, and when the
process ends; a later start with users prints nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromQuery

from callagent.api.pages.auth import (
    DashboardConfig,
    set_session_cookie,
)
from callagent.api.pages.render import render
from callagent.api.state import ApiState
from callagent.store.errors import Conflict, ValidationFailed
from callagent.store.services import users

SETUP_PATH = "/dashboard/setup"


@dataclass
class FirstRun:
    """This process's one-time set-up token, made when the database has no dashboard user."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def url(self, base: str) -> str:
        """The link to print: ``base`` is the dashboard's address, like http://127.0.0.1:8000."""
        return f"{base}{SETUP_PATH}?token={self.token}"

    def accepts(self, given: str) -> bool:
        """Whether ``given`` is this token, still unused (compared in constant time)."""
        return (
            not self.used
            and bool(given)
            and len(given) <= 100
            and users.same_secret(given, self.token)
        )

    async def pending(self, api: ApiState) -> bool:
        """Whether the set-up is still to be done: unused, and nobody can sign in yet."""
        return not self.used and not await users.has_users(api.db)


def _refused(message: str, status: int = 403) -> Response[str]:
    return render("error.html", status_code=status, title="Set-up refused", message=message)


ALREADY_SET_UP = "This callagent is set up already: sign in at /dashboard/login."
WRONG_LINK = (
    "This set-up link is not valid. Open the one `callagent serve` printed when it started "
    "(a restart prints a new one)."
)


def first_run_handlers(
    api: ApiState, config: DashboardConfig, first_run: FirstRun | None
) -> list[Any]:
    """``GET`` and ``POST /dashboard/setup``: the set-up form, open only with the token of a
    pending first run; without one (``first_run`` None) both refuse with 403."""

    async def refusal(token: str) -> Response[str] | None:
        if first_run is None or not await first_run.pending(api):
            return _refused(ALREADY_SET_UP)
        if not first_run.accepts(token):
            return _refused(WRONG_LINK)
        return None

    def form(token: str, values: dict[str, str], error: str = "") -> Response[str]:
        return render(
            "setup.html",
            status_code=400 if error else 200,
            token=token,
            values=values,
            error=error,
        )

    @get("/setup", opt={"public": True}, include_in_schema=False)
    async def setup_form(token: FromQuery[str] = "") -> Response[str]:
        return await refusal(token) or form(token, {"business_name": "", "email": ""})

    @post("/setup", opt={"public": True}, include_in_schema=False)
    async def setup(request: Request[Any, Any, Any]) -> Response[str]:
        # No session yet, so no CSRF secret: the token does that job, since another site
        # cannot know it (docs/dashboard.md, "First start").
        data = await request.form()
        token = str(data.get("token") or "")
        values = {
            "business_name": str(data.get("business_name") or "")[:300],
            "email": str(data.get("email") or "")[:320],
        }
        password = str(data.get("password") or "")
        if first_run is None:
            return _refused(ALREADY_SET_UP)
        # One set-up at a time on this node: two quick submits must not make two clients.
        async with first_run.lock:
            refused = await refusal(token)
            if refused is not None:
                return refused
            if password != str(data.get("password_again") or ""):
                return form(token, values, "The two passwords differ.")
            try:
                made = await users.create_first_user(
                    api.db, values["business_name"], values["email"], password
                )
            except ValidationFailed as error:
                return form(token, values, f"{error.field.replace('_', ' ')}: {error.reason}")
            except Conflict:
                return _refused(ALREADY_SET_UP)
            first_run.used = True
        now = api.clock()
        opened = await users.sign_in(api.db, made.user.email, password, now)
        who = opened.signed_in
        response = render(
            "setup_done.html",
            who=who,
            csrf=who.csrf_token,
            path=SETUP_PATH,
            business=values["business_name"].strip(),
            client_id=str(made.client.client_id),
            api_key=made.client.api_key,
        )
        set_session_cookie(response, opened, config, request, now)
        return response

    return [setup_form, setup]
