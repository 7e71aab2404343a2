"""Helpers shared by the services: row → view conversion, client-scoped fetches, time."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store.errors import NotFound, ValidationFailed
from callagent.store.models import (
    AgentTraining,
    AIAgent,
    Base,
    CallSession,
    ContactNote,
    CustomerProfile,
    Opportunity,
    PhoneNumber,
    ScheduledCallback,
)
from callagent.store.schemas import (
    AgentView,
    CallbackView,
    CallView,
    CustomerView,
    NoteView,
    OpportunityView,
    TrainingView,
)
from callagent.store.states import CallbackStatus

M = TypeVar("M", bound=Base)
V = TypeVar("V", bound=msgspec.Struct)

NO_AGENT = "this client has no agent yet: POST /api/agents/ai/setup/ first"


def hhmm(value: dt.time) -> str:
    """A time of day as ``HH:MM``."""
    return value.strftime("%H:%M")


def parse_hhmm(value: str) -> dt.time:
    """``HH:MM[:SS]`` (already pattern-checked by the schema) as a time."""
    return dt.time.fromisoformat(value)


def check_timezone(name: str, field: str = "timezone") -> str:
    """``name`` if it is an IANA time zone."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(field, f"unknown time zone '{name}'") from None
    return name


class _WithFields:
    """A row seen with some attributes added or replaced: the fields a view computes."""

    __slots__ = ("_computed", "_row")

    def __init__(self, row: object, computed: dict[str, Any]) -> None:
        self._row = row
        self._computed = computed

    def __getattr__(self, name: str) -> Any:
        if name in self._computed:
            return self._computed[name]
        return getattr(self._row, name)


def to_view(row: object, view: type[V], **computed: Any) -> V:
    """The ``view`` of an ORM row: each field read from the row's attribute of the same name
    (``msgspec.convert(..., from_attributes=True)``, which also checks the types), except the
    ``computed`` ones given here. Only the view's fields are read, so a deferred column that
    the view does not show is never loaded."""
    source = _WithFields(row, computed) if computed else row
    return msgspec.convert(source, view, from_attributes=True)


async def get_scoped(
    session: AsyncSession,
    model: type[M],
    client_id: uuid.UUID,
    row_id: uuid.UUID,
    what: str,
    *,
    for_update: bool = False,
) -> M:
    """The row ``row_id`` of ``model`` *if it belongs to* ``client_id``; NotFound otherwise.

    A foreign client's row and a missing row give the same error, so ids reveal nothing
    (docs/api.md: another client's resource answers 404 exactly like a missing one).
    """
    statement = select(model).where(
        model.id == row_id,  # type: ignore[attr-defined]
        model.client_id == client_id,  # type: ignore[attr-defined]
    )
    if for_update:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{what} {row_id} not found")
    return row


async def get_agent_row(
    session: AsyncSession, client_id: uuid.UUID, *, for_update: bool = False
) -> AIAgent:
    """The client's agent, or NotFound (the dashboard's 404 the frontends rely on)."""
    statement = select(AIAgent).where(AIAgent.client_id == client_id)
    if for_update:
        statement = statement.with_for_update()
    agent = (await session.execute(statement)).scalar_one_or_none()
    if agent is None:
        raise NotFound(NO_AGENT)
    return agent


async def agent_phone_numbers(session: AsyncSession, agent_id: uuid.UUID) -> list[str]:
    """The numbers (DIDs) the agent answers, sorted."""
    rows = await session.scalars(
        select(PhoneNumber.number)
        .where(PhoneNumber.agent_id == agent_id)
        .order_by(PhoneNumber.number)
    )
    return list(rows)


def agent_view(agent: AIAgent, phone_numbers: list[str] | None = None) -> AgentView:
    """The API view of an agent row (with its numbers, when the caller loaded them)."""
    return to_view(
        agent,
        AgentView,
        working_hours_start=hhmm(agent.working_hours_start),
        working_hours_end=hhmm(agent.working_hours_end),
        phone_numbers=list(phone_numbers or []),
    )


def training_view(row: AgentTraining) -> TrainingView:
    """The API view of a training session."""
    return to_view(row, TrainingView)


def customer_view(row: CustomerProfile) -> CustomerView:
    """The API view of a customer."""
    return to_view(row, CustomerView)


def call_view(row: CallSession) -> CallView:
    """The list view of a call."""
    return to_view(row, CallView)


def callback_view(
    row: ScheduledCallback, customer: CustomerProfile, now: dt.datetime
) -> CallbackView:
    """The API view of a callback (with its customer's number and name)."""
    return to_view(
        row,
        CallbackView,
        phone_number=customer.phone_number,
        customer_name=customer.name,
        overdue=row.status == CallbackStatus.SCHEDULED and row.scheduled_at < now,
    )


def note_view(row: ContactNote) -> NoteView:
    """The API view of a note."""
    return to_view(row, NoteView)


def cents(value: Decimal, field: str = "estimated_value") -> int:
    """A money amount in minor units; more than two decimals is a 400."""
    if not value.is_finite() or not 0 <= value <= 10**12:
        raise ValidationFailed(field, "must be between 0 and 1000000000000")
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(field, "at most two decimals")
    return int(scaled)


def opportunity_view(row: Opportunity) -> OpportunityView:
    """The API view of an opportunity (the value is stored in minor units)."""
    return to_view(
        row,
        OpportunityView,
        estimated_value=(Decimal(row.estimated_value_cents) / 100).quantize(Decimal("0.01")),
    )
