"""Calls nobody presses a button for (docs/api.md, "Autonomous calls" and "Web-form trigger").

``/calls/api/calls/…`` are the autonomous-call routes of the integration contract, paths as the
CRMs call them: a call now (start-call's service and rules), a call later or a batch of them
(due rows the scheduler dials), and a contact's calls. ``/api/agents/ai/web-form-trigger/``
makes or rotates the agent's web-form trigger; ``/api/triggers/web-form/{token}/`` is the form's
own endpoint, the one route proven by a signature instead of an API key.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody

from callagent.api.errors import responses
from callagent.api.routes.agent import check_call_purpose, start_call_now
from callagent.api.state import ApiState
from callagent.store.errors import ValidationFailed
from callagent.store.schemas import StartCall, StartCallResult
from callagent.store.services import triggers

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key")]


class AutonomousCallController(Controller):
    """Autonomous calls: triggered by a CRM, placed now or dialled later by the scheduler."""

    path = "/calls/api/calls"
    tags = ("autonomous calls",)

    @post(
        "/trigger_autonomous_call/", status_code=201, responses=responses(400, 401, 404, 409, 503)
    )
    async def trigger(
        self,
        data: JSONBody[triggers.AutonomousCall],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
        idempotency_key: IdempotencyKey = None,
    ) -> StartCallResult | triggers.ScheduledCall:
        """Call one of the client's customers: now (as start-call: the same refusals), or at
        ``scheduled_time`` (a due row, dialled with the rules of that moment)."""
        check_call_purpose(data.call_purpose, "call_purpose")
        context = triggers.context_object(data.context)
        if data.scheduled_time is not None:
            return await triggers.schedule_call(
                api.db,
                client_id,
                customer_id=data.contact_id,
                purpose=data.call_purpose,
                context=context,
                at=data.scheduled_time,
                now=now,
                idempotency_key=idempotency_key,
            )
        request = StartCall(customer_id=data.contact_id, purpose=data.call_purpose, context=context)
        return await start_call_now(api, client_id, request, now, idempotency_key)

    @post("/bulk_autonomous_calls/", status_code=200, responses=responses(400, 401, 404, 409))
    async def bulk(
        self,
        data: JSONBody[triggers.BulkCalls],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
        idempotency_key: IdempotencyKey = None,
    ) -> triggers.BulkResult:
        """Schedule each call ``delay_minutes`` from now. Item by item: one that cannot be
        scheduled is reported with its index and reason, the others are scheduled."""
        items = []
        for item in data.calls:
            refused = None
            try:
                check_call_purpose(item.call_purpose, "call_purpose")
            except ValidationFailed as error:  # reported for this item only
                refused = error.reason
            items.append(
                (
                    item.contact_id,
                    item.call_purpose,
                    item.delay_minutes,
                    triggers.context_object(item.context),
                    refused,
                )
            )
        return await triggers.schedule_bulk(
            api.db, client_id, items, now, idempotency_key=idempotency_key
        )

    @get("/autonomous_call_status/", responses=responses(400, 401, 404))
    async def status(
        self,
        contact_id: FromQuery[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> triggers.AutonomousCallStatus:
        """A contact, their latest calls (status, outcome, duration, actions) and the calls
        still due."""
        return await triggers.call_status(api.db, client_id, contact_id)


class WebFormTriggerController(Controller):
    """The agent's web-form trigger: its token and signing secret."""

    path = "/api/agents/ai/web-form-trigger"
    tags = ("agent",)

    @post("/", status_code=201, responses=responses(400, 401, 404))
    async def setup(
        self,
        data: JSONBody[triggers.WebFormTriggerSetup],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> triggers.WebFormTriggerCreated:
        """Make the trigger, or rotate it (new token, new secret; the old ones stop working).
        The secret is shown in this answer only."""
        check_call_purpose(data.call_purpose, "call_purpose")
        return await triggers.setup_web_form(api.db, client_id, data.call_purpose, now)

    @get("/", responses=responses(401, 404))
    async def show(
        self, client_id: NamedDependency[uuid.UUID], api: NamedDependency[ApiState]
    ) -> triggers.WebFormTriggerView:
        """The trigger (its secret only as a hint)."""
        return await triggers.get_web_form(api.db, client_id)


@post(
    "/{agent_token:str}/",
    status_code=202,
    responses=responses(400, 401, 409),
    tags=["web-form trigger"],
    security=[],
)
async def web_form(
    agent_token: FromPath[str],
    request: Request[Any, Any, Any],
    api: NamedDependency[ApiState],
) -> triggers.WebFormAccepted:
    """A web form's submission, signed with the trigger's secret (``X-Callagent-Timestamp``,
    ``X-Callagent-Signature: v1=<hex HMAC-SHA256 of timestamp.body>``): the contact is created
    or updated and a call is due now. Unsigned, stale, wrongly signed or replayed: 401."""
    return await triggers.submit_web_form(
        api.db,
        agent_token,
        await request.body(),
        timestamp=request.headers.get(triggers.TIMESTAMP_HEADER),
        signature=request.headers.get(triggers.SIGNATURE_HEADER),
        now=api.clock(),
    )


def web_form_router(state: ApiState) -> Router:
    """The web-form endpoint, outside the API-key guard: its requests prove themselves by
    their signature (docs/api.md "Web-form trigger")."""

    def provide_state() -> ApiState:
        return state

    return Router(
        path="/api/triggers/web-form",
        route_handlers=[web_form],
        dependencies={"api": Provide(provide_state, sync_to_thread=False)},
    )
