"""Finding a customer by part of a name or number (the dashboard's search box,
docs/dashboard.md "Customers"). Scoped to one client like every query (docs/api.md)."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import or_, select

from callagent.store.db import Database
from callagent.store.models import CustomerProfile
from callagent.store.schemas import CustomerView
from callagent.store.services._common import customer_view

MAX_RESULTS = 50
"""A search shows this many matches, newest first: a person narrows the words, not pages."""


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own ``%`` and ``_`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_customers(
    db: Database, client_id: uuid.UUID, text: str, *, limit: int = MAX_RESULTS
) -> list[CustomerView]:
    """Customers of ``client_id`` whose name or company contains ``text`` (any case) or whose
    number contains its digits (``555 01`` finds ``+15550100``), newest first."""
    text = text.strip()[:200]
    if not text:
        return []
    conditions = [
        CustomerProfile.name.ilike(_like(text), escape="\\"),
        CustomerProfile.company.ilike(_like(text), escape="\\"),
    ]
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 3:
        conditions.append(CustomerProfile.phone_number.like(_like(digits), escape="\\"))
    statement = (
        select(CustomerProfile)
        .where(CustomerProfile.client_id == client_id, or_(*conditions))
        .order_by(CustomerProfile.id.desc())
        .limit(max(1, min(limit, MAX_RESULTS)))
    )
    async with db.read() as session:
        return [customer_view(row) for row in await session.scalars(statement)]
