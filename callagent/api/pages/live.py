"""The dashboard's live calls (docs/dashboard.md "Live calls"): ``/dashboard/live`` lists the
client's calls on the line now, each with its transcript as it grows.

The page is server-rendered like every other; ``live.js`` (no library) fetches the list again
as an HTML fragment, ``/dashboard/live/calls``, every ``REFRESH_S`` and swaps it in when it
changed. Why polling the store and not server-sent events from the call: the calls of a client
may run on any node (DESIGN.md "Scale-out") and the store is where every node writes each
finished turn as it ends (``telephony/call_journal.py``), so one short read shows all of them;
a turn reaches the store when it is over, which is also when the browser phone's own page
shows it (docs/dashboard.md "Wire format"), so a push would not show words any sooner. Without
JavaScript the page is still a correct snapshot (reload to refresh).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from callagent.api.pages.auth import signed_in
from callagent.api.pages.render import render
from callagent.api.state import ApiState
from callagent.store.errors import NotFound
from callagent.store.services import agents, live_calls

REFRESH_S = 2.0
"""How often an open live page asks for the list again: three short reads of the store (the
session, the agent's time zone, the calls) per open page per period; a turn lasts seconds."""

QUIET_S = 45.0
"""A live call without a sign of life for this long is flagged: three of the default
``recovery.heartbeat_interval_s`` (15 s) were missed, so its node may have stopped; crash
recovery settles it after ``recovery.stale_after_s`` (docs/telephony.md "After a crash")."""


def live_handlers(api: ApiState) -> list[Any]:
    """The live page and its fragment, for the dashboard's guarded router."""

    async def context(request: Request[Any, Any, Any]) -> dict[str, Any]:
        who = signed_in(request)
        try:
            zone = (await agents.get_agent(api.db, who.client_id)).timezone
        except NotFound:
            zone = "UTC"
        return {
            "who": who,
            "csrf": who.csrf_token,
            "path": request.url.path,
            "calls": await live_calls.list_live_calls(api.db, who.client_id),
            "now": api.clock(),
            "zone": zone,
            "refresh_ms": int(REFRESH_S * 1000),
            "quiet_s": QUIET_S,
        }

    @get("/live", include_in_schema=False)
    async def live(request: Request[Any, Any, Any]) -> Response[str]:
        return render("live.html", **await context(request))

    @get("/live/calls", include_in_schema=False)
    async def live_fragment(request: Request[Any, Any, Any]) -> Response[str]:
        return render("live_calls.html", **await context(request))

    return [live, live_fragment]
