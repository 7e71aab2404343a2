"""The telephony layer's store service on both backends: inbound routing to the client that owns
the number, and the agent material a call's profile is built from."""

from __future__ import annotations

import uuid

from callagent.store.db import Database
from callagent.store.schemas import TrainingCreate
from callagent.store.services import agents, calls, customers
from callagent.store.services import telephony as store
from callagent.store.states import CallStatus, CallType, TrainingType

from helpers.store_data import NOW, number, ready_client


async def test_an_inbound_call_finds_the_client_and_creates_the_customer(db: Database) -> None:
    did = number()
    client_id = await ready_client(db, [did])
    nobody = await store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=number(), caller="+4917012345678", channel="c", now=NOW
    )
    assert nobody is None
    call_id = uuid.uuid4()
    first = await store.open_inbound_call(
        db, call_id=call_id, did=did, caller="+4917012345678", channel="PJSIP/trunk-1", now=NOW
    )
    assert first is not None
    assert (first.client_id, first.call_id, first.customer_created) == (client_id, call_id, True)
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.call_type, detail.status, detail.did) == (
        CallType.INBOUND,
        CallStatus.IN_PROGRESS,
        did,
    )
    assert (detail.phone_number, detail.telephony_channel) == ("+4917012345678", "PJSIP/trunk-1")
    again = await store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=did, caller="+4917012345678", channel="", now=NOW
    )
    assert again is not None
    assert again.customer_id == first.customer_id
    assert not again.customer_created
    assert first.customer_id is not None
    customer = await customers.get_customer(db, client_id, first.customer_id)
    assert customer.total_calls == 2
    withheld = await store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=did, caller=None, channel="", now=NOW
    )
    assert withheld is not None
    assert (withheld.call_id, withheld.customer_id) == (None, None)


async def test_the_profile_material_and_its_fingerprint(db: Database) -> None:
    client_id = await ready_client(db, name="telephony test")
    agent = await agents.get_agent(db, client_id)
    before = await store.agent_fingerprint(db, agent.id)
    material = await store.agent_material(db, client_id, agent.id)
    assert material is not None
    assert (material.client_name, material.agent.agent_name) == ("telephony test", "Alex")
    assert [t.training_type for t in material.trainings] == [TrainingType.SCRIPT]
    assert await store.agent_fingerprint(db, agent.id) == before
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )  # the same material: the level and the agent row do not change, the fingerprint does
    assert await store.agent_fingerprint(db, agent.id) != before
    assert await store.agent_material(db, await ready_client(db), agent.id) is None
    assert await store.agent_fingerprint(db, uuid.uuid4()) is None
