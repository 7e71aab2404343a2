"""Opportunities: possible sales, with stages that follow a transition table (docs/api.md)."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.models import CustomerProfile, Opportunity
from callagent.store.pagination import SortKey, paginate
from callagent.store.schemas import (
    OpportunityCreate,
    OpportunityPage,
    OpportunityUpdate,
    OpportunityView,
)
from callagent.store.services import events
from callagent.store.services._common import cents, get_scoped, opportunity_view
from callagent.store.states import OpportunityStage, check_transition

NEWEST_FIRST = (SortKey(Opportunity.id),)


async def create_opportunity(
    db: Database, client_id: uuid.UUID, data: OpportunityCreate
) -> OpportunityView:
    """A new opportunity for one of the client's customers."""
    value = cents(data.estimated_value)
    async with db.write() as session:
        customer = await get_scoped(
            session, CustomerProfile, client_id, data.customer_id, "customer"
        )
        row = Opportunity(
            client_id=client_id,
            customer_id=customer.id,
            title=data.title,
            estimated_value_cents=value,
            currency=data.currency,
            probability=data.probability,
            stage=data.stage,
        )
        session.add(row)
        await session.flush()
        await events.opportunity_created(session, row)
        return opportunity_view(row)


async def get_opportunity(
    db: Database, client_id: uuid.UUID, opportunity_id: uuid.UUID
) -> OpportunityView:
    """One opportunity."""
    async with db.read() as session:
        return opportunity_view(
            await get_scoped(session, Opportunity, client_id, opportunity_id, "opportunity")
        )


async def update_opportunity(
    db: Database, client_id: uuid.UUID, opportunity_id: uuid.UUID, data: OpportunityUpdate
) -> OpportunityView:
    """Change the given fields; a stage change must be allowed by the table."""
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "estimated_value" in changes:
        changes["estimated_value_cents"] = cents(changes.pop("estimated_value"))
    async with db.write() as session:
        row = await get_scoped(
            session, Opportunity, client_id, opportunity_id, "opportunity", for_update=True
        )
        stage = changes.pop("stage", None)
        if stage is not None and stage != row.stage:
            row.stage = check_transition(row.stage, stage)
        for name, value in changes.items():
            setattr(row, name, value)
        await session.flush()
        return opportunity_view(row)


async def list_opportunities(
    db: Database,
    client_id: uuid.UUID,
    *,
    stage: OpportunityStage | None = None,
    customer_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> OpportunityPage:
    """Opportunities newest first."""
    statement = select(Opportunity).where(Opportunity.client_id == client_id)
    if stage is not None:
        statement = statement.where(Opportunity.stage == stage)
    if customer_id is not None:
        statement = statement.where(Opportunity.customer_id == customer_id)
    async with db.read() as session:
        page = await paginate(
            session, statement, NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
    return OpportunityPage(
        items=[opportunity_view(row) for row in page.rows], next_cursor=page.next_cursor
    )
