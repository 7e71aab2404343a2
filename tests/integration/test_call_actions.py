"""In-call actions end to end (docs/dialog.md "In-call actions"): an inbound call through the
AMI simulator, routed, stored and acted on as it goes - on scripted STT / LLM / TTS fakes."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from callagent.dialog.conversation import AgentLines
from callagent.store.services import callbacks, customers
from callagent.telephony.asterisk.call_tracker import CallTransferred, InboundCallStarted

from fakes.routing_rig import CALLER, make_tenant, number, routing_rig
from helpers import store_fixtures
from helpers.audio import voice


@pytest.fixture
def sqlite_url() -> str:
    """The migrated SQLite test database (these tests need no second backend)."""
    return store_fixtures.migrated_url("sqlite")


def talk(*seconds: float) -> tuple[bytes, ...]:
    """One utterance per duration, each at another pitch (the scripted STT tells turns apart
    by their bytes)."""
    return tuple(voice(s, 16000, f0=110.0 + 15 * i) for i, s in enumerate(seconds))


async def test_do_not_call_is_stored_during_the_call_and_start_call_then_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    did = number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[did],
        transcripts=["Hi, who is this?", "Honestly, please don't call me again."],
        replies=["This is Alma from Alpha Roofing. How can I help?", "You'll love our roofs!"],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, talk(0.6, 0.6, 0.6), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        detail = await rig.wait_for_call(alpha.client_id, call_id, lambda d: bool(d.actions_taken))
        # Written the moment it was decided: the call is still going on (its confirmation is
        # being spoken).
        assert not call.done()
        customer = await customers.get_customer(rig.db, alpha.client_id, detail.customer_id)
        assert customer.do_not_call
        await call
        final = await rig.ended(alpha.client_id, call_id)
        async with rig.api() as api:
            refused = await api.post(
                "/api/agents/ai/start-call/",
                json={"phone_number": CALLER, "ignore_working_hours": True},
                headers=alpha.headers,
            )
    (action,) = final.actions_taken
    assert (action["type"], action["source"], action["result"]) == (
        "set_do_not_call",
        "rule",
        "done",
    )
    agent_lines = [t.text for t in final.transcript if t.speaker == "agent"]
    assert agent_lines[-1] == AgentLines().do_not_call
    assert "You'll love our roofs!" not in agent_lines  # the model was not asked
    assert len(rig.llm.requests) == 1
    assert refused.status_code == 409, refused.text
    assert "do-not-call" in refused.text or "do_not_call" in refused.text


async def test_a_request_for_a_person_is_handed_over_through_ami_after_saying_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    did = number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[did],
        transcripts=["Can I talk to a real person please?"],
        replies=["I can help you with that myself."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, talk(0.6, 0.6), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        await rig.wait_for(lambda: any(isinstance(e, CallTransferred) for e in rig.events))
        await call
        final = await rig.ended(alpha.client_id, call_id)
    (action,) = final.actions_taken
    assert (action["type"], action["target"], action["result"]) == ("transfer", "sales", "done")
    assert final.transferred_to == "sales"  # Asterisk accepted the Redirect
    agent_lines = [t.text for t in final.transcript if t.speaker == "agent"]
    assert agent_lines[-1] == AgentLines().transfer
    assert rig.llm.requests == []


async def test_a_callback_the_model_decides_is_scheduled_at_the_time_said_and_confirmed(
    sqlite_url: str, tmp_path: Path
) -> None:
    did = number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[did],
        transcripts=["I'm driving, can you call me back tomorrow after three?"],
        replies=['ACTION: schedule_callback(when="tomorrow at three", reason="driving")'],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, talk(0.6, 0.6), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        await call
        final = await rig.ended(alpha.client_id, call_id)
        page = await callbacks.list_callbacks(rig.db, alpha.client_id, dt.datetime.now(dt.UTC))
    (action,) = final.actions_taken
    assert action["type"] == "schedule_callback"
    (callback,) = page.items
    assert str(callback.id) == action["callback_id"]
    assert callback.origin_call_id == call_id
    # The caller is in Germany (+49): tomorrow at 15:00 Berlin time, inside the agent's hours
    # (or moved into them, and said so).
    local = callback.scheduled_at.astimezone(dt.UTC)
    assert local > dt.datetime.now(dt.UTC)
    agent_lines = [t.text for t in final.transcript if t.speaker == "agent"]
    assert agent_lines[-1].startswith(("Sure, I'll call you back", "We can only call"))
    assert "ACTION" not in " ".join(agent_lines)
    assert not any("_" in spoken or "(" in spoken for spoken in rig.tts.spoken)
