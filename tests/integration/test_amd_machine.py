"""What the agent does when AMD hears an answering machine on a call it placed, with
``asterisk.amd_on_machine = connect`` (docs/telephony.md "When a machine answers"): the agent's
``dial_policy.on_machine`` - hang up at once (the default) or leave its short message - then
the call is stored as ``voicemail`` and retried like any unreached call. Through the AMI
simulator and real AudioSocket connections with the real ``CallRunner`` on scripted models;
the main flows on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callagent.store.models import ScheduledCallback
from callagent.store.services import dial_queue
from callagent.store.states import CallOutcome, CallStatus

from fakes.ami_simulator import Callee
from fakes.routing_rig import Tenant, make_tenant, number, routing_rig
from helpers import store_fixtures
from helpers.audio import voice

pytestmark = pytest.mark.timeout(60)

backend = store_fixtures.backend
database_url = store_fixtures.database_url

MACHINE = {"amd_status": "MACHINE", "amd_cause": "LONGGREETING-2100-2000"}


def machine(**overrides: Any) -> Callee:
    """A voicemail box: AMD says MACHINE; it would take a message (the callee 'talks' after
    the agent, as a box records silence)."""
    return Callee(
        **{
            **MACHINE,
            "utterances": (voice(0.6, 16000, f0=120.0),),
            "pause_after_agent_s": 0.3,
            "final_wait_s": 0.3,
            **overrides,
        }
    )


async def place(rig: Any, tenant: Tenant, phone: str, policy: dict[str, Any] | None) -> Any:
    """Set the agent's dial policy (when given), place a call to ``phone``, return it ended."""
    async with rig.api() as api:
        if policy is not None:
            changed = await api.patch(
                "/api/agents/ai/", json={"dial_policy": policy}, headers=tenant.headers
            )
            assert changed.status_code == 200, changed.text
        response = await api.post(
            "/api/agents/ai/start-call/",
            json={"phone_number": phone, "ignore_working_hours": True},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
    return await rig.ended(tenant.client_id, uuid.UUID(response.json()["call_id"]))


async def retry_of(rig: Any, call_id: uuid.UUID) -> ScheduledCallback | None:
    """Run the scheduler's retry pass (docs/scheduler.md) and return the call's retry row."""
    now = dt.datetime.now(dt.UTC)
    await dial_queue.create_retries(
        rig.db, now, now - dt.timedelta(hours=1), dial_queue.RetryPolicy()
    )
    async with rig.db.read() as session:
        return await session.scalar(
            select(ScheduledCallback).where(ScheduledCallback.retry_of_call_id == call_id)
        )


@pytest.mark.parametrize("policy", [None, {"on_machine": "hang_up"}])
async def test_a_machine_is_hung_up_on_without_a_word_and_retried(
    database_url: str, tmp_path: Path, policy: dict[str, Any] | None
) -> None:
    phone = number()
    async with routing_rig(
        database_url,
        tmp_path,
        callees={phone: machine()},
        transcripts=["Please leave a message after the tone."],
        replies=["Hello, please call us back."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        final = await place(rig, alpha, phone, policy)
        retry = await retry_of(rig, final.id)
    assert (final.amd_status, final.status) == ("MACHINE", CallStatus.COMPLETED)
    assert final.outcome == CallOutcome.VOICEMAIL
    assert final.transcript == []  # no greeting, nothing said to the machine
    assert rig.tts.spoken == []
    assert rig.llm.requests == []
    assert retry is not None
    assert retry.kind == "retry"


async def test_a_machine_gets_the_agents_message_once_then_the_call_ends_and_is_retried(
    database_url: str, tmp_path: Path
) -> None:
    phone = number()
    async with routing_rig(
        database_url,
        tmp_path,
        callees={phone: machine()},
        transcripts=["Please leave a message after the tone."],
        replies=["Hello, please call us back."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        final = await place(
            rig,
            alpha,
            phone,
            {
                "on_machine": "leave_message",
                "machine_message": "Hi, {name}, an AI assistant of {company} here. We will "
                "call   again tomorrow.",
            },
        )
        retry = await retry_of(rig, final.id)
    message = "Hi, Alma, an AI assistant of Alpha Roofing here. We will call again tomorrow."
    assert rig.tts.spoken == [message]  # spoken once, by the TTS alone
    assert rig.llm.requests == []
    assert [(t.speaker, t.text) for t in final.transcript] == [("agent", message)]
    assert (final.outcome, final.status) == (CallOutcome.VOICEMAIL, CallStatus.COMPLETED)
    assert retry is not None


async def test_the_default_message_says_who_called_from_where_and_that_they_call_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    phone = number()
    async with routing_rig(sqlite_url, tmp_path, callees={phone: machine()}) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        final = await place(rig, alpha, phone, {"on_machine": "leave_message"})
    [said] = rig.tts.spoken
    assert said.startswith("Hello, this is Alma, an AI assistant from Alpha Roofing")
    assert "try again later" in said
    assert [t.text for t in final.transcript] == [said]
    assert final.outcome == CallOutcome.VOICEMAIL


async def test_a_verdict_that_comes_while_the_agent_greets_stops_the_greeting(
    sqlite_url: str, tmp_path: Path
) -> None:
    phone = number()
    # The greeting of a placed call lasts ~1.5 s on the scripted TTS; AMI reports MACHINE
    # 0.5 s into it.
    callee = machine(amd_reported_late_s=0.5, max_wait_for_agent_s=10.0)
    async with routing_rig(
        sqlite_url,
        tmp_path,
        callees={phone: callee},
        transcripts=["Please leave a message after the tone."],
        replies=["Hello, please call us back."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        final = await place(
            rig,
            alpha,
            phone,
            {"on_machine": "leave_message", "machine_message": "An AI assistant: we call again."},
        )
    spoken = [(t.speaker, t.text) for t in final.transcript]
    # The greeting was cut at what was played (as on a barge-in), then the message followed.
    [(_, cut), message] = spoken
    assert cut.startswith("Hello, this is Alma from Alpha Roofing")
    assert not cut.endswith("Do you have a moment?")
    assert message == ("agent", "An AI assistant: we call again.")
    assert rig.tts.spoken[-1] == "An AI assistant: we call again."
    assert rig.llm.requests == []
    assert final.outcome == CallOutcome.VOICEMAIL


@pytest.mark.parametrize(
    "amd",
    [
        {"amd_status": "HUMAN", "amd_cause": "HUMAN-800-800"},
        # Silence alone: mostly a person who waits for the caller to speak first.
        {"amd_status": "MACHINE", "amd_cause": "INITIALSILENCE-2000-2000"},
    ],
    ids=["human", "silence"],
)
async def test_a_person_gets_the_conversation_whatever_the_machine_policy(
    database_url: str, tmp_path: Path, amd: dict[str, str]
) -> None:
    phone = number()
    callee = Callee(
        **amd,
        utterances=(voice(0.6, 16000, f0=110.0),),
        pause_after_agent_s=0.4,
        final_wait_s=0.5,
    )
    async with routing_rig(
        database_url,
        tmp_path,
        callees={phone: callee},
        transcripts=["Yes, tell me more."],
        replies=["We offer free inspections."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        final = await place(
            rig, alpha, phone, {"on_machine": "leave_message", "machine_message": "Bye."}
        )
    assert final.amd_status == amd["amd_status"]
    assert [t.speaker for t in final.transcript] == ["agent", "caller", "agent"]
    assert "Bye." not in rig.tts.spoken
    assert final.outcome != CallOutcome.VOICEMAIL


@pytest.fixture
def sqlite_url() -> str:
    """The migrated SQLite test database (the tests that need no second backend)."""
    return store_fixtures.migrated_url("sqlite")
