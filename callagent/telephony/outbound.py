"""Placing outgoing calls: the interface between the REST API and the telephony layer.

``POST /api/agents/ai/start-call/`` (docs/api.md) commits a ``queued`` call session and then hands
it to a :class:`CallPlacer` by ids only (no ORM objects cross this line, DESIGN.md practice 11).
The Asterisk work (AMI originate, docs/telephony.md) implements the same protocol; until it is
configured, the embedded mode uses :class:`NoTelephonyPlacer`, which places nothing and says so.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class OutboundCallRequest:
    """What the telephony layer needs to dial, and the ids to report back against."""

    call_session_id: uuid.UUID
    client_id: uuid.UUID
    agent_id: uuid.UUID
    customer_id: uuid.UUID
    phone_number: str  # E.164
    call_type: str  # outbound / scheduled / followup
    purpose: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    scheduled_callback_id: uuid.UUID | None = None
    # The number the callee sees: the client's own (its agent's first PhoneNumber), so each
    # agent presents its own caller id; "" leaves the trunk's default (docs/scheduler.md).
    caller_id: str = ""


@dataclass(frozen=True, kw_only=True)
class PlacementResult:
    """Whether the call was handed to the phone system.

    ``placed=True`` means dialling started (the call session becomes ``dialing``; later events
    move it on through ``store.services.call_state.apply_call_update``). ``placed=False``
    means no call exists: the call session becomes ``failed`` with ``reason``.
    """

    placed: bool
    reason: str = ""
    telephony_call_id: str = ""


@runtime_checkable
class CallPlacer(Protocol):
    """Anything that can start an outgoing call. Implementations must return quickly (start
    dialling, do not wait for an answer) and must not raise for ordinary failures: they return
    ``placed=False`` with a reason instead."""

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        """Start dialling ``request.phone_number`` for the call session of the request."""
        ...


async def place_call_safely(placer: CallPlacer, request: OutboundCallRequest) -> PlacementResult:
    """``placer.place_call(request)``; a placer that raises anyway must not leave the call
    ``queued`` forever: that is recorded as a failed placement naming the error."""
    try:
        return await placer.place_call(request)
    except Exception as error:
        log.exception("the call placer failed for call %s", request.call_session_id)
        return PlacementResult(placed=False, reason=f"telephony error: {type(error).__name__}")


NO_TELEPHONY_REASON = "no telephony configured"


class NoTelephonyPlacer:
    """The embedded mode's placer when no Asterisk is configured.

    It never pretends: every request comes back ``placed=False`` with the reason
    "no telephony configured", so the call session is ``failed`` and the CRM can see why.
    """

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        """Refuse: there is no phone line to place the call on."""
        return PlacementResult(placed=False, reason=NO_TELEPHONY_REASON)
