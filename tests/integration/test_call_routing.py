"""Inbound and outbound calls routed to the right client's agent and stored as they go
(docs/telephony.md, "Routing" and "Persistence as the call goes"), through the AMI simulator
and real AudioSocket connections, on scripted models. The main inbound and outbound flows run
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from callagent.store.services import customers
from callagent.store.services import telephony as store
from callagent.store.states import CallOutcome, CallStatus, CallType
from callagent.telephony.asterisk.call_tracker import InboundCallStarted

from fakes.ami_simulator import NO_CHANNEL, RING_OUT, Callee
from fakes.routing_rig import CALLER, FALLBACK, make_tenant, number, routing_rig
from helpers import store_fixtures
from helpers.audio import voice

pytestmark = pytest.mark.timeout(60)

# The shared database fixtures: one migrated database per backend.
backend = store_fixtures.backend
database_url = store_fixtures.database_url


@pytest.fixture
def sqlite_url() -> str:
    """The migrated SQLite test database (the tests that need no second backend)."""
    return store_fixtures.migrated_url("sqlite")


def talk(*seconds: float) -> tuple[bytes, ...]:
    """One utterance per duration, each at another pitch: the scripted STT tells a new turn
    from more audio of the same one by the bytes."""
    return tuple(voice(s, 16000, f0=110.0 + 15 * i) for i, s in enumerate(seconds))


async def test_an_inbound_call_reaches_the_clients_agent_and_is_stored_as_it_goes(
    database_url: str, tmp_path: Path
) -> None:
    did_a, did_b = number(), number()
    async with routing_rig(
        database_url,
        tmp_path,
        dids=[did_a, did_b],
        transcripts=["Do you fix flat roofs?", "Great, and the price?"],
        replies=["Yes, we fix flat roofs.", "The inspection is free."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did_a)
        bravo = await make_tenant(rig.db, "Bea", "Bravo Solar", did_b)
        call = asyncio.create_task(
            rig.sim.inbound_call(did_a, CALLER, talk(0.6, 0.6), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        # Mid-call: the first exchange is already in the store, the call is still live.
        mid = await rig.wait_for_call(
            alpha.client_id, call_id, lambda d: any(t.speaker == "caller" for t in d.transcript)
        )
        assert not call.done()
        assert (mid.status, mid.ended_at) == (CallStatus.IN_PROGRESS, None)
        channel = rig.sim.live_channel(call_id)
        assert channel is not None
        rig.sim.press(channel, "7")  # the caller's key press, as AMI reports it
        await call
        final = await rig.ended(alpha.client_id, call_id)
        customer_list = await customers.list_customers(rig.db, alpha.client_id)
        bravo_calls = await rig.calls_of(bravo.client_id)
    # The right agent answered, with its client's name.
    greeting = final.transcript[0]
    assert (greeting.speaker, greeting.text) == (
        "agent",
        # The first words say it is an AI and that the call is recorded (docs/dialog.md
        # "Compliance").
        "Hello, this is Alma from Alpha Roofing. I'm an AI assistant. This call is recorded."
        " How can I help you today?",
    )
    assert "Alpha Roofing" in rig.llm.requests[0][0]["content"]
    assert "Bravo" not in rig.llm.requests[0][0]["content"]
    assert "The customer called you." in rig.llm.requests[0][1]["content"]
    assert [(t.speaker, t.text) for t in final.transcript[1:]] == [
        ("caller", "Do you fix flat roofs?"),
        ("agent", "Yes, we fix flat roofs."),
        ("caller", "Great, and the price?"),
        ("agent", "The inspection is free."),
    ]
    assert (final.call_type, final.did, final.phone_number) == (CallType.INBOUND, did_a, CALLER)
    assert (final.hangup_cause, final.hangup_cause_text, final.dtmf) == (16, "Normal Clearing", "7")
    assert final.recording_ref == f"{call_id}.wav"
    assert (tmp_path / final.recording_ref).stat().st_size > 44
    assert final.duration_s is not None
    assert final.duration_s > 1
    assert len(final.latency["turns"]) == 2
    assert final.latency["turns"][0]["voice_to_voice"] is not None
    assert final.outcome is None  # an answered call's outcome is call-outcome's
    # The customer was created from the caller id, for this client only.
    (customer,) = customer_list.items
    assert (customer.phone_number, customer.total_calls, customer.answered_calls) == (CALLER, 1, 1)
    assert bravo_calls.items == []


async def test_keys_pressed_as_the_call_is_answered_are_stored_with_the_later_ones(
    database_url: str, tmp_path: Path
) -> None:
    """The caller presses 1 as the dialplan answers - AMI reports it before the call is
    announced and long before it is routed and stored - then 2 and # mid-call: "12#"."""
    did = number()
    async with routing_rig(database_url, tmp_path, dids=[did]) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, (), final_wait_s=3.0, keys_while_answering="1")
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        await rig.wait_for_call(alpha.client_id, call_id, lambda d: bool(d.transcript))
        channel = rig.sim.live_channel(call_id)
        assert channel is not None
        for digit in "2#":
            rig.sim.press(channel, digit)
        await call
        final = await rig.ended(alpha.client_id, call_id)
    assert final.dtmf == "12#"


async def test_an_outbound_call_from_the_api_is_placed_answered_and_stored(
    database_url: str, tmp_path: Path
) -> None:
    phone = number()
    callee = Callee(utterances=talk(0.6), pause_after_agent_s=0.4, final_wait_s=0.5)
    async with routing_rig(
        database_url,
        tmp_path,
        callees={phone: callee},
        transcripts=["Yes, tell me more."],
        replies=["We offer free inspections."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        async with rig.api() as api:
            response = await api.post(
                "/api/agents/ai/start-call/",
                json={
                    "phone_number": phone,
                    "purpose": "follow up on the roof quote",
                    "context": {"quote_id": 7},
                    "ignore_working_hours": True,
                },
                headers=alpha.headers,
            )
            assert response.status_code == 201, response.text
            placed = response.json()
            call_id = uuid.UUID(placed["call_id"])
            assert placed["status"] in ("dialing", "ringing", "in_progress")
            final = await rig.ended(alpha.client_id, call_id)
            reported = await api.post(
                "/api/agents/ai/call-outcome/",
                json={"call_id": str(call_id), "outcome": "interested"},
                headers=alpha.headers,
            )
    originate = next(a for a in rig.sim.actions if a.name == "Originate")
    assert originate["ChannelId"] == str(call_id)  # the call session id is the call id
    assert originate.variables() == {"CALLAGENT_UUID": str(call_id)}
    # The agent placed the call: it says who calls and why, not "How can I help you?".
    assert [(t.speaker, t.text) for t in final.transcript] == [
        (
            "agent",
            "Hello, this is Alma from Alpha Roofing, calling to follow up on the roof quote."
            " I'm an AI assistant. This call is recorded. Do you have a moment?",
        ),
        ("caller", "Yes, tell me more."),
        ("agent", "We offer free inspections."),
    ]
    assert (final.call_type, final.phone_number) == (CallType.OUTBOUND, phone)
    assert (final.amd_status, final.amd_cause) == ("HUMAN", "HUMAN-800-800")
    assert final.telephony_call_id == str(call_id)
    assert final.recording_ref == f"{call_id}.wav"
    assert final.started_at is not None
    assert final.duration_s is not None
    context = rig.llm.requests[0][1]["content"]
    assert "You placed this call" in context
    assert "follow up on the roof quote" in context
    assert "quote id: 7" in context
    # The CRM (or post-call analysis) reports how it went; the call stays as the phone ended it.
    assert reported.status_code == 200, reported.text
    assert reported.json()["call"]["outcome"] == "interested"
    assert reported.json()["call"]["status"] == "completed"
    assert reported.json()["customer"]["answered_calls"] == 1


@pytest.mark.parametrize(
    ("sip", "outcome", "status", "why", "cause"),
    [
        # What a real Asterisk 22.10.1 reported for each callee (docs/telephony.md).
        (486, CallOutcome.BUSY, CallStatus.COMPLETED, "busy (Asterisk reason 0, cause 17)", 17),
        (
            RING_OUT,
            CallOutcome.NO_ANSWER,
            CallStatus.COMPLETED,
            "no answer (Asterisk reason 3, cause 19)",
            19,
        ),
        (
            503,
            CallOutcome.FAILED,
            CallStatus.FAILED,
            "congestion (Asterisk reason 0, cause 34)",
            34,
        ),
        (404, CallOutcome.FAILED, CallStatus.FAILED, "failed (Asterisk reason 0, cause 1)", 1),
        (NO_CHANNEL, CallOutcome.FAILED, CallStatus.FAILED, "failed (Asterisk reason 0)", None),
    ],
)
async def test_each_failure_lands_as_the_calls_outcome(
    sqlite_url: str,
    tmp_path: Path,
    sip: int,
    outcome: CallOutcome,
    status: CallStatus,
    why: str,
    cause: int | None,
) -> None:
    phone = number()
    async with routing_rig(
        sqlite_url, tmp_path, callees={phone: Callee(sip=sip)}, ring_timeout_s=0.3
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        async with rig.api() as api:
            response = await api.post(
                "/api/agents/ai/start-call/",
                json={"phone_number": phone, "ignore_working_hours": True},
                headers=alpha.headers,
            )
        assert response.status_code == 201, response.text
        call_id = uuid.UUID(response.json()["call_id"])
        final = await rig.ended(alpha.client_id, call_id)
        customer = await customers.get_customer(rig.db, alpha.client_id, final.customer_id)
    assert (final.outcome, final.status, final.failure_reason) == (outcome, status, why)
    assert final.hangup_cause == cause
    assert final.telephony_channel == ("" if sip == NO_CHANNEL else "PJSIP/trunk-00000001")
    assert final.transcript == []
    assert final.started_at is None
    assert rig.reports == []  # never connected to an agent
    assert (customer.last_outcome, customer.total_calls, customer.answered_calls) == (outcome, 1, 0)


@pytest.mark.parametrize("on_machine", ["hangup", "connect"])
async def test_amd_machine_is_recorded(sqlite_url: str, tmp_path: Path, on_machine: str) -> None:
    phone = number()
    callee = Callee(
        amd_status="MACHINE",
        amd_cause="LONGGREETING-2100-2000",
        utterances=talk(0.6),
        pause_after_agent_s=0.3,
        final_wait_s=0.3,
    )
    async with routing_rig(
        sqlite_url,
        tmp_path,
        callees={phone: callee},
        transcripts=["Please leave a message after the tone."],
        replies=["Hello, this is Alma from Alpha Roofing, please call us back."],
        CALLAGENT_AMD_ON_MACHINE=on_machine,
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        async with rig.api() as api:
            response = await api.post(
                "/api/agents/ai/start-call/",
                json={"phone_number": phone, "ignore_working_hours": True},
                headers=alpha.headers,
            )
        call_id = uuid.UUID(response.json()["call_id"])
        final = await rig.ended(alpha.client_id, call_id)
    assert (final.amd_status, final.amd_cause) == ("MACHINE", "LONGGREETING-2100-2000")
    # Nobody was reached: voicemail, and no conversation - with `hangup` Asterisk hangs up,
    # with `connect` the agent does (its dial_policy.on_machine defaults to hang_up; leaving a
    # message: tests/integration/test_amd_machine.py).
    assert (final.outcome, final.transcript) == (CallOutcome.VOICEMAIL, [])


@pytest.mark.parametrize("policy", ["file_agent", "message"])
async def test_a_number_no_client_owns(sqlite_url: str, tmp_path: Path, policy: Any) -> None:
    owned, unowned = number(), number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[owned, unowned],
        transcripts=["Hello?"],
        replies=["Hi, how can I help?"],
        unknown_number=policy,
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", owned)
        channel = await rig.sim.inbound_call(
            unowned, CALLER, talk(0.6), pause_after_agent_s=0.3, max_wait_for_agent_s=3
        )
        await rig.wait_for(lambda: len(rig.reports) == 1)
        await rig.settled()
        assert channel.call_id is not None
        assert await store.call_owner(rig.db, channel.call_id) is None  # nothing stored
        assert (await rig.calls_of(alpha.client_id)).items == []
        assert (await customers.list_customers(rig.db, alpha.client_id)).items == []
    assert channel.result is not None
    if policy == "file_agent":
        assert rig.tts.spoken[0] == FALLBACK.greeting
        assert channel.result.hung_up_by == "caller"
    else:
        assert rig.tts.spoken[0] == "Sorry, this number is not in service."
        assert channel.result.hung_up_by == "agent"  # the message, then the call ends
        assert rig.llm.requests == []


async def test_client_bs_number_never_reaches_client_as_agent(
    sqlite_url: str, tmp_path: Path
) -> None:
    did_a, did_b = number(), number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[did_a, did_b],
        transcripts=["Who is this?", "Who is this?"],
        replies=["Bea here.", "Alma here."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did_a)
        bravo = await make_tenant(rig.db, "Bea", "Bravo Solar", did_b)
        await rig.sim.inbound_call(did_b, CALLER, talk(0.5), pause_after_agent_s=0.3)
        await rig.wait_for(lambda: len(rig.reports) == 1)
        await rig.settled()
        bravo_calls = await rig.calls_of(bravo.client_id)
        alpha_calls = await rig.calls_of(alpha.client_id)
        alpha_customers = await customers.list_customers(rig.db, alpha.client_id)
        # The same caller then calls A: A gets its own customer record.
        await rig.sim.inbound_call(did_a, CALLER, talk(0.5), pause_after_agent_s=0.3)
        await rig.wait_for(lambda: len(rig.reports) == 2)
        await rig.settled()
        alpha_after = await customers.list_customers(rig.db, alpha.client_id)
        bravo_after = await customers.list_customers(rig.db, bravo.client_id)
    assert rig.tts.spoken[0].startswith("Hello, this is Bea from Bravo Solar.")
    first_prompt, second_prompt = (r[0]["content"] for r in rig.llm.requests)
    assert "Bravo Solar" in first_prompt
    assert "Alpha" not in first_prompt
    assert "Alpha Roofing" in second_prompt
    assert [c.did for c in [await _detail(rig, bravo.client_id, bravo_calls)]] == [did_b]
    assert alpha_calls.items == []
    assert alpha_customers.items == []
    assert [c.phone_number for c in alpha_after.items] == [CALLER]
    assert [c.phone_number for c in bravo_after.items] == [CALLER]
    assert alpha_after.items[0].id != bravo_after.items[0].id


async def _detail(rig: Any, client_id: uuid.UUID, page: Any) -> Any:
    (item,) = page.items
    return await rig.wait_for_call(client_id, item.id, lambda d: True)


async def test_a_database_failure_during_a_call_does_not_end_it(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    did = number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[did],
        transcripts=["First question?", "Second question?"],
        replies=["First answer.", "Second answer."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, talk(0.6, 0.6), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        await rig.wait_for_call(
            alpha.client_id, call_id, lambda d: any(t.speaker == "caller" for t in d.transcript)
        )
        working = rig.db.write

        @contextlib.asynccontextmanager
        async def broken() -> AsyncIterator[Any]:
            raise OperationalError("UPDATE call_sessions", {}, Exception("disk I/O error"))
            yield  # pragma: no cover

        rig.db.write = broken  # type: ignore[method-assign]
        channel = await call
        await rig.wait_for(lambda: len(rig.reports) == 1)
        await rig.settled()
        rig.db.write = working  # type: ignore[method-assign]
        stored = await rig.wait_for_call(alpha.client_id, call_id, lambda d: True)
    # The call went on to the end: both questions were answered, the caller hung up.
    assert channel.result is not None
    assert channel.result.hung_up_by == "caller"
    (report,) = rig.reports
    assert [t.agent_text for t in report.log.turns] == ["First answer.", "Second answer."]
    # What was stored before the failure is kept; what came after is logged as lost.
    assert [t.text for t in stored.transcript][:3] == [
        "Hello, this is Alma from Alpha Roofing. I'm an AI assistant. This call is recorded."
        " How can I help you today?",
        "First question?",
        "First answer.",
    ]
    assert "Second answer." not in [t.text for t in stored.transcript]
    assert "could not store" in caplog.text


async def test_a_transfer_is_recorded(sqlite_url: str, tmp_path: Path) -> None:
    did = number()
    async with routing_rig(
        sqlite_url,
        tmp_path,
        dids=[did],
        transcripts=["Put me through to sales."],
        replies=["One moment."],
    ) as rig:
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, talk(0.6, 0.6, 0.6), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        await rig.wait_for_call(alpha.client_id, call_id, lambda d: len(d.transcript) >= 3)
        await rig.dialer.transfer(call_id, "sales")
        await call
        final = await rig.ended(alpha.client_id, call_id)
    assert final.transferred_to == "sales"
    assert [t.speaker for t in final.transcript][:3] == ["agent", "caller", "agent"]
