"""The dashboard of ``GET /api/dashboard/ai-agent/`` (docs/api.md).

Every figure here is read in bounded work, whatever the size of the tables: the agent row and
the counters table hold the totals; "recent" lists are index range scans with a LIMIT; the
overdue count stops at ``OVERDUE_COUNT_CAP``.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from callagent.store import counters
from callagent.store import training as rubric
from callagent.store.db import Database
from callagent.store.models import (
    AgentTraining,
    AIAgent,
    CallSession,
    CustomerProfile,
    ScheduledCallback,
)
from callagent.store.schemas import (
    Alert,
    CallbackSummary,
    CustomerStatistics,
    Dashboard,
    Insight,
    Performance,
    QuickAction,
    TrainingStatus,
)
from callagent.store.services import learning
from callagent.store.services._common import (
    agent_phone_numbers,
    agent_view,
    call_view,
    callback_view,
    get_agent_row,
)
from callagent.store.services.callbacks import OVERDUE_COUNT_CAP, count_overdue
from callagent.store.states import AgentStatus, CallbackStatus

RECENT_CALLS = 10
UPCOMING_CALLBACKS = 5


def _performance(agent: AIAgent) -> Performance:
    metrics = agent.performance_metrics or {}
    satisfaction = metrics.get("satisfaction") or {}
    count = satisfaction.get("count", 0)
    return Performance(
        calls_handled=agent.calls_handled,
        successful_conversions=agent.successful_conversions,
        conversion_rate=round(agent.successful_conversions / agent.calls_handled, 4)
        if agent.calls_handled
        else 0.0,
        average_satisfaction=round(satisfaction["sum"] / count, 2) if count else None,
        outcomes=dict(metrics.get("outcomes") or {}),
    )


def _insights(agent: AIAgent) -> list[Insight]:
    metrics = agent.performance_metrics or {}
    insights: list[Insight] = []
    objections = metrics.get("objections") or {}
    ranked = sorted(objections.items(), key=lambda item: (-item[1]["raised"], item[0]))
    for name, entry in ranked[:3]:
        rate = entry["converted"] / entry["raised"] if entry["raised"] else 0.0
        insights.append(
            Insight(
                kind="objection",
                message=f"'{name}' came up on {entry['raised']} calls; "
                f"{rate:.0%} of them converted",
                data={"objection": name, **entry},
            )
        )
    untrained = sorted(name for name, entry in objections.items() if not entry.get("trained"))
    if untrained:
        insights.append(
            Insight(
                kind="untrained_objection",
                message="customers raise objections the agent has no answer for: "
                + ", ".join(untrained[:5]),
                data={"objections": untrained[:20]},
            )
        )
    outcomes = metrics.get("outcomes") or {}
    if outcomes:
        top = max(sorted(outcomes), key=lambda name: outcomes[name])
        insights.append(
            Insight(
                kind="outcomes",
                message=f"the most common outcome is '{top}' ({outcomes[top]} calls)",
                data={"outcomes": outcomes},
            )
        )
    # What the learning loop counted: best answers, call times, openers (docs/learning.md).
    optimizing = agent.status == AgentStatus.OPTIMIZING
    insights += [
        Insight(kind=found.kind, message=found.message, data=found.data)
        for found in learning.insights(metrics, learning=optimizing)
    ]
    return insights


def _quick_actions(agent: AIAgent, overdue: int) -> list[QuickAction]:
    actions = []
    if agent.training_level < 100:
        actions.append(
            QuickAction(
                action="train",
                label="Continue training",
                method="POST",
                path="/api/agents/ai/training/",
            )
        )
    if agent.training_level >= rubric.LEARNING_AT:
        actions.append(
            QuickAction(
                action="start_call",
                label="Start a call",
                method="POST",
                path="/api/agents/ai/start-call/",
            )
        )
    if overdue:
        actions.append(
            QuickAction(
                action="overdue_callbacks",
                label="Review overdue callbacks",
                method="GET",
                path="/api/dashboard/ai-agent/callbacks/?status=scheduled&overdue=true",
            )
        )
    actions.append(
        QuickAction(
            action="import_customers",
            label="Import customers (CSV)",
            method="POST",
            path="/api/customers/import/",
        )
    )
    return actions


def _alerts(agent: AIAgent, performance: Performance, overdue: int) -> list[Alert]:
    alerts = []
    if agent.training_level < rubric.LEARNING_AT:
        alerts.append(
            Alert(
                level="warning",
                code="agent_not_ready",
                message=f"the agent is trained to {agent.training_level} %; "
                f"it can call from {rubric.LEARNING_AT} %",
            )
        )
    if overdue:
        more = "+" if overdue > OVERDUE_COUNT_CAP else ""
        alerts.append(
            Alert(
                level="warning",
                code="overdue_callbacks",
                message=f"{min(overdue, OVERDUE_COUNT_CAP)}{more} callbacks are overdue",
            )
        )
    if performance.average_satisfaction is not None and performance.average_satisfaction < 3:
        alerts.append(
            Alert(
                level="warning",
                code="low_satisfaction",
                message=f"average customer satisfaction is {performance.average_satisfaction}/5",
            )
        )
    return alerts


async def dashboard(db: Database, client_id: uuid.UUID, now: dt.datetime) -> Dashboard:
    """Everything the dashboard shows; NotFound when the client has no agent."""
    async with db.read() as session:
        agent = await get_agent_row(session, client_id)
        recent = list(
            await session.scalars(
                select(CallSession)
                .where(CallSession.client_id == client_id)
                .order_by(CallSession.id.desc())
                .limit(RECENT_CALLS)
            )
        )
        totals = await counters.read(session, client_id)
        upcoming = (
            await session.execute(
                select(ScheduledCallback, CustomerProfile)
                .join(CustomerProfile, CustomerProfile.id == ScheduledCallback.customer_id)
                .where(
                    ScheduledCallback.client_id == client_id,
                    ScheduledCallback.status == CallbackStatus.SCHEDULED,
                )
                .order_by(ScheduledCallback.scheduled_at, ScheduledCallback.id)
                .limit(UPCOMING_CALLBACKS)
            )
        ).all()
        overdue = await count_overdue(session, client_id, now)
        phone_numbers = await agent_phone_numbers(session, agent.id)
        sessions = await session.scalar(
            select(func.count()).where(AgentTraining.agent_id == agent.id)
        )
    performance = _performance(agent)
    coverage = dict(agent.training_coverage or {})
    return Dashboard(
        agent=agent_view(agent, phone_numbers),
        performance=performance,
        recent_calls=[call_view(call) for call in recent],
        customer_statistics=CustomerStatistics(
            total=totals.get("customers.total", 0),
            cold=totals.get("customers.cold", 0),
            warm=totals.get("customers.warm", 0),
            hot=totals.get("customers.hot", 0),
            converted=totals.get("customers.converted", 0),
            do_not_call=totals.get("customers.do_not_call", 0),
        ),
        scheduled_callbacks=CallbackSummary(
            scheduled=totals.get("callbacks.scheduled", 0),
            overdue=min(overdue, OVERDUE_COUNT_CAP),
            overdue_capped=overdue > OVERDUE_COUNT_CAP,
            upcoming=[callback_view(cb, customer, now) for cb, customer in upcoming],
        ),
        training_status=TrainingStatus(
            training_level=agent.training_level,
            status=agent.status,
            sessions=int(sessions or 0),
            coverage=coverage,
            next_steps=rubric.next_steps(coverage)
            if agent.status in (AgentStatus.TRAINING, AgentStatus.LEARNING)
            or agent.training_level < 100
            else [],
        ),
        learning_insights=_insights(agent),
        quick_actions=_quick_actions(agent, overdue),
        alerts=_alerts(agent, performance, overdue),
    )
