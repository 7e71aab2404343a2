"""The agent service on both backends: status, concurrent training, the numbers it answers."""

from __future__ import annotations

import asyncio

import pytest

from callagent.store.db import Database
from callagent.store.errors import Conflict, ValidationFailed
from callagent.store.schemas import AgentSetup, AgentUpdate, TrainingCreate
from callagent.store.services import agents, clients
from callagent.store.services import telephony as store
from callagent.store.services.agents import advance_status
from callagent.store.states import AgentStatus, TrainingType

from helpers.store_data import new_client, number, ready_client


def test_agent_status_walks_forward_only() -> None:
    assert advance_status(AgentStatus.TRAINING, AgentStatus.ACTIVE) == AgentStatus.ACTIVE
    assert advance_status(AgentStatus.OPTIMIZING, AgentStatus.ACTIVE) == AgentStatus.OPTIMIZING


async def test_concurrent_training_sessions_all_count(db: Database) -> None:
    client_id = await new_client(db)
    await agents.setup_agent(db, client_id, AgentSetup(agent_name="Alex"))
    await asyncio.gather(
        *(
            agents.add_training(
                db,
                client_id,
                TrainingCreate(training_type=TrainingType.TECHNIQUES, sales_techniques=[f"t{i}"]),
            )
            for i in range(5)
        )
    )
    assert (await agents.get_agent(db, client_id)).training_level == 15


async def test_numbers_are_normalised_and_unique_across_clients(db: Database) -> None:
    mine, theirs = number(), number()
    national = mine.replace("+", "00")
    client_id = await ready_client(db, [national, mine])
    agent = await agents.get_agent(db, client_id)
    assert agent.phone_numbers == [mine]  # E.164, once
    other = await ready_client(db, [theirs])
    with pytest.raises(Conflict, match=r"phone_numbers\[1\].*another agent"):
        await agents.update_agent(db, other, AgentUpdate(phone_numbers=[theirs, mine]))
    with pytest.raises(ValidationFailed, match=r"phone_numbers\[0\]"):
        await agents.update_agent(db, other, AgentUpdate(phone_numbers=["12"]))
    # Nothing was half-written, and the owner can release a number for someone else.
    assert (await agents.get_agent(db, other)).phone_numbers == [theirs]
    released = await agents.update_agent(db, client_id, AgentUpdate(phone_numbers=[]))
    assert released.phone_numbers == []
    taken = await agents.update_agent(db, other, AgentUpdate(phone_numbers=[mine, theirs]))
    assert taken.phone_numbers == sorted([mine, theirs])
    owner = await store.find_number(db, mine)
    assert owner is not None
    assert owner.client_id == other
    with pytest.raises(Conflict):
        await agents.setup_agent(
            db,
            (await clients.create_client(db, "late")).client_id,
            AgentSetup(agent_name="Late", phone_numbers=[theirs]),
        )
