"""Helpers shared by the services: row → view conversion, client-scoped fetches, time."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any, TypeVar

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


def parse_uuid(value: str, field: str) -> uuid.UUID:
    """A UUID from text, or a 400 on ``field``."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed(field, "not a valid id") from None


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
    (issue #3 "Another client's resource is a 404, exactly like a missing one").
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
    """The numbers (DIDs) the agent answers, sorted (issue #4)."""
    rows = await session.scalars(
        select(PhoneNumber.number)
        .where(PhoneNumber.agent_id == agent_id)
        .order_by(PhoneNumber.number)
    )
    return list(rows)


def agent_view(agent: AIAgent, phone_numbers: list[str] | None = None) -> AgentView:
    """The API view of an agent row (with its numbers, when the caller loaded them)."""
    return AgentView(
        id=agent.id,
        agent_name=agent.agent_name,
        personality_type=agent.personality_type,
        voice_model=agent.voice_model,
        working_hours_start=hhmm(agent.working_hours_start),
        working_hours_end=hhmm(agent.working_hours_end),
        timezone=agent.timezone,
        business_info=agent.business_info,
        sales_goals=agent.sales_goals,
        status=agent.status,
        training_level=agent.training_level,
        training_coverage=agent.training_coverage,
        calls_handled=agent.calls_handled,
        successful_conversions=agent.successful_conversions,
        conversation_memory=agent.conversation_memory,
        customer_preferences=agent.customer_preferences,
        performance_metrics=agent.performance_metrics,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
        phone_numbers=list(phone_numbers or []),
    )


def training_view(row: AgentTraining) -> TrainingView:
    """The API view of a training session."""
    return TrainingView(
        id=row.id,
        training_type=row.training_type,
        training_content=row.training_content,
        product_details=row.product_details,
        objection_responses=row.objection_responses,
        sales_techniques=row.sales_techniques,
        client_instructions=row.client_instructions,
        completion_percentage=row.completion_percentage,
        level_before=row.level_before,
        level_after=row.level_after,
        created_at=row.created_at,
    )


def customer_view(row: CustomerProfile) -> CustomerView:
    """The API view of a customer."""
    return CustomerView(
        id=row.id,
        phone_number=row.phone_number,
        name=row.name,
        email=row.email,
        company=row.company,
        timezone=row.timezone,
        interest_level=row.interest_level,
        call_preference_time=row.call_preference_time,
        total_calls=row.total_calls,
        answered_calls=row.answered_calls,
        total_talk_time_s=row.total_talk_time_s,
        last_call_at=row.last_call_at,
        last_outcome=row.last_outcome,
        conversation_notes=row.conversation_notes,
        preferences=row.preferences,
        objections=row.objections,
        do_not_call=row.do_not_call,
        converted=row.converted,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def call_fields(row: CallSession) -> dict[str, Any]:
    """The list fields of a call (shared by CallView and CallDetail)."""
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "phone_number": row.phone_number,
        "call_type": row.call_type,
        "purpose": row.purpose,
        "status": row.status,
        "outcome": row.outcome,
        "failure_reason": row.failure_reason,
        "sentiment": row.sentiment,
        "duration_s": row.duration_s,
        "customer_satisfaction": row.customer_satisfaction,
        "callback_id": row.callback_id,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
    }


def call_view(row: CallSession) -> CallView:
    """The list view of a call."""
    return CallView(**call_fields(row))


def callback_view(
    row: ScheduledCallback, customer: CustomerProfile, now: dt.datetime
) -> CallbackView:
    """The API view of a callback (with its customer's number and name)."""
    return CallbackView(
        id=row.id,
        customer_id=row.customer_id,
        phone_number=customer.phone_number,
        customer_name=customer.name,
        scheduled_at=row.scheduled_at,
        reason=row.reason,
        status=row.status,
        priority=row.priority,
        expected_outcome=row.expected_outcome,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        origin_call_id=row.origin_call_id,
        overdue=row.status == CallbackStatus.SCHEDULED and row.scheduled_at < now,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def note_view(row: ContactNote) -> NoteView:
    """The API view of a note."""
    return NoteView(
        id=row.id,
        customer_id=row.customer_id,
        call_id=row.call_id,
        kind=row.kind,
        body=row.body,
        created_at=row.created_at,
    )


def cents(value: Decimal, field: str = "estimated_value") -> int:
    """A money amount in minor units; more than two decimals is a 400."""
    if not value.is_finite() or not 0 <= value <= 10**12:
        raise ValidationFailed(field, "must be between 0 and 1000000000000")
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(field, "at most two decimals")
    return int(scaled)


def opportunity_view(row: Opportunity) -> OpportunityView:
    """The API view of an opportunity."""
    return OpportunityView(
        id=row.id,
        customer_id=row.customer_id,
        title=row.title,
        estimated_value=(Decimal(row.estimated_value_cents) / 100).quantize(Decimal("0.01")),
        currency=row.currency,
        probability=row.probability,
        stage=row.stage,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
