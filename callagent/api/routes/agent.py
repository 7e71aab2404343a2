"""``/api/agents/ai/…``: the integration contract's agent routes (docs/api.md), paths unchanged."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody

from callagent.api.errors import responses
from callagent.api.state import ApiState
from callagent.dialog.profile_builder import BusinessInfoError, check_business_info
from callagent.dialog.purposes import check_purpose
from callagent.store.errors import ValidationFailed
from callagent.store.phone import normalize_phone
from callagent.store.schemas import (
    AgentSetup,
    AgentUpdate,
    AgentView,
    CallOutcomeReport,
    CallOutcomeResult,
    StartCall,
    StartCallResult,
    TrainingCreate,
    TrainingList,
    TrainingResult,
)
from callagent.store.services import agents, calls, triggers
from callagent.telephony.outbound import (
    CallPlacer,
    OutboundCallRequest,
    PlacementResult,
    place_call_safely,
)

log = logging.getLogger(__name__)


async def place(placer: CallPlacer, prepared: calls.PreparedCall) -> PlacementResult:
    """Hand a committed call session to the telephony layer. A placer that raises must not
    leave the call ``queued`` forever: that is recorded as a failed placement."""
    request = OutboundCallRequest(
        call_session_id=prepared.call_id,
        client_id=prepared.client_id,
        agent_id=prepared.agent_id,
        customer_id=prepared.customer_id,
        phone_number=prepared.phone_number,
        call_type=prepared.call_type.value,
        purpose=prepared.purpose,
        context=prepared.context,
        scheduled_callback_id=prepared.scheduled_callback_id,
        caller_id=prepared.caller_id,
    )
    return await place_call_safely(placer, request)


def check_call_purpose(purpose: str, field: str) -> None:
    """ "follow_up: …" names a call purpose (docs/api.md "start-call"); a misspelt one must not
    silently become a sales call: a 400 naming ``field``."""
    try:
        check_purpose(purpose)
    except ValueError as error:
        raise ValidationFailed(field, str(error)) from None


async def start_call_now(
    api: ApiState,
    client_id: uuid.UUID,
    data: StartCall,
    now: dt.datetime,
    idempotency_key: str | None,
) -> StartCallResult:
    """start-call's placing of a call now (also the autonomous trigger's, docs/api.md): the
    checks and the ``queued`` call session, the hand-over to telephony, its answer."""
    # Before anything is written: a refusal at capacity leaves no call session behind
    # (docs/telephony.md "Capacity"). The slot is the placed call's until it connects.
    slot = api.admission.reserve() if api.admission is not None else None
    try:
        prepared = await calls.prepare_call(
            api.db,
            client_id,
            data,
            now,
            idempotency_key=idempotency_key,
            rule=api.dial_rule,
        )
    except BaseException:
        if slot is not None:
            slot.cancel()
        raise
    if prepared.existing:
        # Same Idempotency-Key as an earlier request: that call, as it is now; no dial.
        if slot is not None:
            slot.cancel()
        return await calls.existing_call(api.db, client_id, prepared.call_id)
    if slot is not None:
        slot.bind(prepared.call_id)
    result = await place(api.placer, prepared)
    if slot is not None and not result.placed:
        slot.cancel()
    recorded = await calls.record_placement(
        api.db,
        client_id,
        prepared.call_id,
        placed=result.placed,
        reason=result.reason,
        telephony_call_id=result.telephony_call_id,
        now=api.clock(),
    )
    return msgspec.structs.replace(recorded, customer_created=prepared.customer_created)


def _check_info(info: dict[str, object]) -> None:
    """``business_info`` keys the agent reads must be usable (docs/api.md "What the agent is
    taught"): a 400 naming the key otherwise, before anything is written."""
    try:
        check_business_info(info)
    except BusinessInfoError as error:
        raise ValidationFailed(error.field, error.reason) from None


class AgentController(Controller):
    """The client's one agent."""

    path = "/api/agents/ai"
    tags = ("agent",)

    @post("/setup/", status_code=201, responses=responses(400, 401, 409))
    async def setup(
        self,
        data: JSONBody[AgentSetup],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> AgentView:
        """Create the client's blank agent (status ``training``, level 0). Once per client."""
        _check_info(data.business_info)
        return await agents.setup_agent(api.db, client_id, data, voices=api.voices)

    @get("/", responses=responses(401, 404))
    async def show(
        self, client_id: NamedDependency[uuid.UUID], api: NamedDependency[ApiState]
    ) -> AgentView:
        """The agent and what it has learnt."""
        return await agents.get_agent(api.db, client_id)

    @patch("/", responses=responses(400, 401, 404))
    async def update(
        self,
        data: JSONBody[AgentUpdate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> AgentView:
        """Change the agent's settings (name, personality, voice, hours, time zone, info)."""
        if isinstance(data.business_info, dict):
            _check_info(data.business_info)
        return await agents.update_agent(api.db, client_id, data, voices=api.voices)

    @post("/training/", status_code=201, responses=responses(400, 401, 404))
    async def train(
        self,
        data: JSONBody[TrainingCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> TrainingResult:
        """Add a training session; the level rises by the rubric (docs/api.md)."""
        return await agents.add_training(api.db, client_id, data)

    @get("/training/", responses=responses(401, 404))
    async def trainings(
        self, client_id: NamedDependency[uuid.UUID], api: NamedDependency[ApiState]
    ) -> TrainingList:
        """Every training session, oldest first."""
        return await agents.list_trainings(api.db, client_id)

    @post("/start-call/", status_code=201, responses=responses(400, 401, 404, 409, 503))
    async def start_call(
        self,
        data: JSONBody[StartCall],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> StartCallResult | triggers.ScheduledCall:
        """Place a call. Refused (409) while the agent is under 20 %, for do-not-call numbers,
        and outside working hours (and, on a serving node, the customer's legal calling window)
        unless ``ignore_working_hours``; refused (503) while this node carries as many calls as
        it may. Without telephony the call session is created and comes back ``failed``: "no
        telephony configured". With ``scheduled_time``: a due row the scheduler dials then."""
        check_call_purpose(data.purpose, "purpose")
        if data.phone_number is None and data.customer_id is None:
            raise ValidationFailed("phone_number", "phone_number or customer_id is required")
        if data.scheduled_time is not None:
            if data.scheduled_callback_id is not None:
                raise ValidationFailed(
                    "scheduled_time",
                    "a callback is moved with POST /api/callbacks/{id}/reschedule/",
                )
            return await triggers.schedule_call(
                api.db,
                client_id,
                customer_id=data.customer_id,
                phone=None if data.phone_number is None else normalize_phone(data.phone_number),
                purpose=data.purpose or "sales_outreach",
                context=triggers.context_object(data.context),
                at=data.scheduled_time,
                now=now,
                idempotency_key=idempotency_key,
            )
        return await start_call_now(api, client_id, data, now, idempotency_key)

    @post("/call-outcome/", status_code=200, responses=responses(400, 401, 404, 409))
    async def call_outcome(
        self,
        data: JSONBody[CallOutcomeReport],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CallOutcomeResult:
        """Record how a call went: the call, the customer, a callback, the agent's learning."""
        return await calls.record_outcome(api.db, client_id, data, now)
