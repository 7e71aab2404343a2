"""Rows the store and API tests start from: clients, agents ready to call, unused numbers.

The test database is shared by every test of a backend (helpers/store_fixtures.py), so each test
makes its own clients, and phone numbers an agent answers - unique across the installation - are
drawn at random.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

from callagent.store.db import Database
from callagent.store.schemas import AgentSetup, TrainingCreate
from callagent.store.services import agents, clients
from callagent.store.states import TrainingType

# Wednesday 10:00 UTC: inside the default working hours.
NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def number() -> str:
    """A valid number no other test uses (numbers are unique across the installation)."""
    return "+4930" + "".join(random.choice("0123456789") for _ in range(8))


async def new_client(db: Database, name: str = "store test") -> uuid.UUID:
    return (await clients.create_client(db, name)).client_id


async def ready_agent(
    db: Database, client_id: uuid.UUID, phone_numbers: list[str] | None = None
) -> None:
    """Set up the client's agent, answering ``phone_numbers``, and train it past the level
    start-call asks for (a 200-word script: level 25)."""
    await agents.setup_agent(
        db, client_id, AgentSetup(agent_name="Alex", phone_numbers=phone_numbers or [])
    )
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )


async def ready_client(
    db: Database, phone_numbers: list[str] | None = None, name: str = "store test"
) -> uuid.UUID:
    """A new client whose agent is ready to call (:func:`ready_agent`)."""
    client_id = await new_client(db, name)
    await ready_agent(db, client_id, phone_numbers)
    return client_id
