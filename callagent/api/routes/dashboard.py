"""``/api/dashboard/ai-agent/…``: the dashboard routes of the integration contract."""

from __future__ import annotations

import datetime as dt
import uuid

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from callagent.api.errors import responses
from callagent.api.params import Limit
from callagent.api.state import ApiState
from callagent.store.pagination import DEFAULT_LIMIT
from callagent.store.schemas import CallbackPage, CustomerPage, Dashboard
from callagent.store.services import callbacks, customers
from callagent.store.services import dashboard as dashboard_service
from callagent.store.services._common import get_agent_row
from callagent.store.states import CallbackStatus, InterestLevel


async def _require_agent(api: ApiState, client_id: uuid.UUID) -> None:
    # The dashboard is the agent's: without one, every dashboard route is a 404.
    async with api.db.read() as session:
        await get_agent_row(session, client_id)


class DashboardController(Controller):
    """The AI agent dashboard."""

    path = "/api/dashboard/ai-agent"
    tags = ("dashboard",)

    @get("/", responses=responses(401, 404))
    async def overview(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> Dashboard:
        """Agent status and performance, recent calls, customer statistics, callbacks,
        training status, insights, quick actions and alerts. 404 when there is no agent."""
        return await dashboard_service.dashboard(api.db, client_id, now)

    @get("/customers/", responses=responses(400, 401, 404))
    async def customers(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        interest_level: FromQuery[InterestLevel | None] = None,
        converted: FromQuery[bool | None] = None,
        do_not_call: FromQuery[bool | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CustomerPage:
        """The agent's customers, newest first, filtered."""
        await _require_agent(api, client_id)
        return await customers.list_customers(
            api.db,
            client_id,
            interest_level=interest_level,
            converted=converted,
            do_not_call=do_not_call,
            cursor=cursor,
            limit=limit,
        )

    @get("/callbacks/", responses=responses(400, 401, 404))
    async def callbacks(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
        status: FromQuery[CallbackStatus | None] = None,
        overdue: FromQuery[bool | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CallbackPage:
        """The agent's callbacks, soonest first; ``overdue=true`` for the late ones."""
        await _require_agent(api, client_id)
        return await callbacks.list_callbacks(
            api.db, client_id, now, status=status, overdue=overdue, cursor=cursor, limit=limit
        )
