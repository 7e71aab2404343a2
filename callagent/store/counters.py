"""Per-client running totals (see ``models.Counter``): change them with the rows they count."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store.models import Counter


async def bump(session: AsyncSession, client_id: uuid.UUID, deltas: Mapping[str, int]) -> None:
    """Add each delta to its counter in the current transaction (an atomic upsert, so two
    concurrent writers both count)."""
    rows = [
        {"client_id": client_id, "name": name, "value": delta}
        for name, delta in sorted(deltas.items())
        if delta
    ]
    if not rows:
        return
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Counter).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[Counter.client_id, Counter.name],
        set_={"value": Counter.value + statement.excluded.value},
    )
    await session.execute(statement)


async def read(session: AsyncSession, client_id: uuid.UUID) -> dict[str, int]:
    """All of a client's counters (absent ones are zero)."""
    result = await session.execute(
        select(Counter.name, Counter.value).where(Counter.client_id == client_id)
    )
    return {name: value for name, value in result.all()}
