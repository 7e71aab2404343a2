"""The call journal: writes in order, off the audio loop, never ending a call."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from callagent.store.db import Database
from callagent.store.schemas import AgentSetup, StartCall, TrainingCreate, TranscriptTurn
from callagent.store.services import agents, calls, clients, recovery
from callagent.store.services import telephony as telephony_store
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallOutcome, CallStatus, TrainingType
from callagent.telephony import call_journal
from callagent.telephony.asterisk.call_tracker import (
    AmdResult,
    AmdStatus,
    CallAnswered,
    CallChannel,
    CallEnded,
    CallRinging,
    CallTransferred,
    DialOutcome,
    DtmfReceived,
    InboundCallStarted,
    OriginateResult,
)
from callagent.telephony.call_journal import CallJournals, JournalObserver, update_for
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.pipeline import BargeIn, TurnRecord

from helpers import store_fixtures

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
ID = uuid.uuid4()


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")  # migrates once per process, outside the loop


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    yield database
    await database.dispose()


async def placed_call(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    """A client with a ready agent and a queued outbound call: (client id, call id)."""
    client_id = (await clients.create_client(db, "journal test")).client_id
    await agents.setup_agent(db, client_id, AgentSetup(agent_name="Alex"))
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )
    prepared = await calls.prepare_call(
        db, client_id, StartCall(phone_number="+4930123456", ignore_working_hours=True), NOW
    )
    return client_id, prepared.call_id


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (CallRinging(ID), CallUpdate(status=CallStatus.RINGING)),
        (CallAnswered(ID), CallUpdate(status=CallStatus.IN_PROGRESS)),
        (OriginateResult(ID, DialOutcome.ANSWERED, 4), None),
        (
            CallChannel(ID, "PJSIP/trunk-00000001"),
            CallUpdate(telephony_channel="PJSIP/trunk-00000001"),
        ),
        (
            # A real Asterisk 22.10.1 reports a callee's SIP 486 as Reason 0 and cause 17.
            OriginateResult(ID, DialOutcome.BUSY, 0, "", 17),
            CallUpdate(
                status=CallStatus.COMPLETED,
                outcome=CallOutcome.BUSY,
                failure_reason="busy (Asterisk reason 0, cause 17)",
            ),
        ),
        (
            OriginateResult(ID, DialOutcome.NO_ANSWER, 3),
            CallUpdate(
                status=CallStatus.COMPLETED,
                outcome=CallOutcome.NO_ANSWER,
                failure_reason="no answer (Asterisk reason 3)",
            ),
        ),
        (
            OriginateResult(ID, DialOutcome.CONGESTION, None, "", 34),  # AMI lost the response
            CallUpdate(
                status=CallStatus.FAILED,
                outcome=CallOutcome.FAILED,
                failure_reason="congestion (cause 34)",
            ),
        ),
        (
            OriginateResult(ID, DialOutcome.FAILED, None, "Permission denied"),
            CallUpdate(
                status=CallStatus.FAILED,
                outcome=CallOutcome.FAILED,
                failure_reason="failed: Permission denied",
            ),
        ),
        (
            AmdResult(ID, AmdStatus.NOTSURE, "TOOLONG-5000"),
            CallUpdate(amd_status="NOTSURE", amd_cause="TOOLONG-5000"),
        ),
        (DtmfReceived(ID, "#"), CallUpdate(dtmf="#")),
        (CallTransferred(ID, "sales"), CallUpdate(transferred_to="sales")),
        (
            CallEnded(ID, 17, "User busy"),
            CallUpdate(
                status=CallStatus.COMPLETED,
                only_if_answered=True,
                hangup_cause=17,
                hangup_cause_text="User busy",
            ),
        ),
        (InboundCallStarted(ID, "+4930123456", "+49170", "PJSIP/t-1"), None),
    ],
)
def test_each_call_event_maps_to_one_update(event: Any, expected: CallUpdate | None) -> None:
    assert update_for(event) == expected


async def test_writes_land_in_order_and_the_writer_ends(db: Database) -> None:
    client_id, call_id = await placed_call(db)
    journals = CallJournals(db, clock=lambda: NOW)
    async with journals.hold(call_id, client_id) as journal:
        journal.update(CallUpdate(status=CallStatus.IN_PROGRESS))
        for i in range(20):  # queued in one go, faster than the database writes them
            journal.turns([TranscriptTurn(speaker="caller", text=f"turn {i}", at=NOW)])
        journal.update(CallUpdate(status=CallStatus.COMPLETED))
    assert journal.task.done()
    assert len(journals) == 0
    assert (journal.applied, journal.failed, journal.dropped) == (22, 0, 0)
    detail = await calls.get_call(db, client_id, call_id)
    assert [t.text for t in detail.transcript] == [f"turn {i}" for i in range(20)]
    assert detail.status == CallStatus.COMPLETED


async def test_an_unanswered_call_keeps_its_channel_and_a_hangup_cause_that_comes_last(
    db: Database,
) -> None:
    # The order a real Asterisk 22.10.1 sent for a ring timeout: the channel, the verdict,
    # then the Hangup with its cause (docs/telephony.md "Outbound calls and AMD").
    client_id, call_id = await placed_call(db)
    journals = CallJournals(db, clock=lambda: NOW)
    journals.on_call_event(CallChannel(call_id, "PJSIP/trunk-00000001"))
    journals.on_call_event(OriginateResult(call_id, DialOutcome.NO_ANSWER, 3))
    journals.on_call_event(CallEnded(call_id, 19, "User alerting, no answer"))
    await journals.close()
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.status, detail.outcome, detail.failure_reason) == (
        CallStatus.COMPLETED,
        CallOutcome.NO_ANSWER,
        "no answer (Asterisk reason 3)",
    )
    assert (detail.hangup_cause, detail.hangup_cause_text) == (19, "User alerting, no answer")
    assert detail.telephony_channel == "PJSIP/trunk-00000001"


async def test_call_events_find_their_client_and_unknown_calls_are_ignored(db: Database) -> None:
    client_id, call_id = await placed_call(db)
    journals = CallJournals(db, clock=lambda: NOW)
    journals.on_call_event(CallRinging(call_id))
    journals.on_call_event(OriginateResult(call_id, DialOutcome.NO_ANSWER, 3))
    journals.on_call_event(CallRinging(uuid.uuid4()))  # not a stored call (another node's?)
    await journals.close()
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.status, detail.outcome) == (CallStatus.COMPLETED, CallOutcome.NO_ANSWER)
    assert len(journals) == 0
    journals.on_call_event(CallRinging(call_id))  # after close: ignored, no task started
    assert len(journals) == 0


class FlakyDatabase:
    """A Database whose writes fail ``failures`` times with a database error first."""

    def __init__(self, db: Database, failures: int) -> None:
        self._db = db
        self.failures = failures
        self.attempts = 0

    def read(self) -> Any:
        return self._db.read()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        async with self._db.write() as session:
            yield session


async def test_what_ami_reports_before_an_inbound_call_is_routed_is_stored_with_it(
    db: Database,
) -> None:
    """A key pressed as the call is answered reaches AMI before the call runner has routed the
    call - before its session exists (docs/telephony.md): it is kept and stored in order."""
    client_id = (await clients.create_client(db, "journal test")).client_id
    did = f"+4930{uuid.uuid4().int % 10**7:07d}"
    await agents.setup_agent(db, client_id, AgentSetup(agent_name="Alex", phone_numbers=[did]))
    journals = CallJournals(db, clock=lambda: NOW)
    call_id = uuid.uuid4()
    journals.on_call_event(InboundCallStarted(call_id, did, "+49170555", "PJSIP/trunk-1"))
    journals.on_call_event(DtmfReceived(call_id, "1"))
    await asyncio.sleep(0.05)  # a journal writing now would find no session and drop it
    routed = await telephony_store.open_inbound_call(
        db, call_id=call_id, did=did, caller="+49170555", channel="PJSIP/trunk-1", now=NOW
    )
    assert routed is not None
    async with journals.hold(call_id, client_id) as journal:
        journals.on_call_event(DtmfReceived(call_id, "2"))
        journal.update(CallUpdate(status=CallStatus.IN_PROGRESS))
    await journals.close()
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.dtmf == "12"


async def test_what_ami_reports_about_a_call_that_is_not_stored_is_dropped(db: Database) -> None:
    journals = CallJournals(db, clock=lambda: NOW)
    call_id = uuid.uuid4()
    journals.on_call_event(InboundCallStarted(call_id, "+4930999", "+49170555", "PJSIP/t-2"))
    journals.on_call_event(DtmfReceived(call_id, "1"))
    journals.not_stored(call_id)  # the router answered it as an unknown number
    assert len(journals) == 0
    # Announced calls never routed on this node are forgotten after a while, and bounded.
    later = [NOW]
    journals = CallJournals(db, clock=lambda: later[0])
    journals.on_call_event(InboundCallStarted(call_id, "+4930999", "+49170555", "PJSIP/t-2"))
    later[0] = NOW + dt.timedelta(seconds=call_journal.EARLY_KEEP_S + 1)
    for _ in range(call_journal.MAX_EARLY_CALLS + 5):
        journals.on_call_event(InboundCallStarted(uuid.uuid4(), "+4930999", "+49170", "P/t"))
    assert call_id not in journals._early
    assert len(journals._early) == call_journal.MAX_EARLY_CALLS
    await journals.close()


async def test_a_database_error_is_retried_then_given_up_never_raised(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, call_id = await placed_call(db)
    flaky = FlakyDatabase(db, failures=2)
    journals = CallJournals(flaky, retry_delays=(0.01, 0.01))  # type: ignore[arg-type]
    async with journals.hold(call_id, client_id) as journal:
        journal.turns([TranscriptTurn(speaker="agent", text="kept", at=NOW)])
    assert (journal.applied, journal.failed, flaky.attempts) == (1, 0, 3)
    flaky.failures = 10
    async with journals.hold(call_id, client_id) as journal:
        journal.turns([TranscriptTurn(speaker="agent", text="lost", at=NOW)])
    assert (journal.applied, journal.failed) == (0, 1)
    assert "could not store 1 transcript turn(s)" in caplog.text
    detail = await calls.get_call(db, client_id, call_id)
    assert [t.text for t in detail.transcript] == ["kept"]


async def test_a_refusal_by_the_stores_rules_is_not_retried(db: Database) -> None:
    client_id, call_id = await placed_call(db)
    journals = CallJournals(db, retry_delays=(5.0,))
    async with journals.hold(call_id, client_id) as journal:
        journal.update(CallUpdate(status=CallStatus.FAILED))
        journal.update(CallUpdate(status=CallStatus.COMPLETED))  # final → final: refused
        journal.update(CallUpdate(dtmf="1"))  # later writes still land
    assert (journal.applied, journal.failed) == (2, 1)
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.status, detail.dtmf) == (CallStatus.FAILED, "1")


class StuckDatabase:
    """A Database whose writes hang until released."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.release = asyncio.Event()

    def read(self) -> Any:
        return self._db.read()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        await self.release.wait()
        async with self._db.write() as session:
            yield session


async def test_a_stuck_database_costs_writes_not_memory_or_the_call(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, call_id = await placed_call(db)
    monkeypatch.setattr(call_journal, "MAX_PENDING", 5)
    stuck = StuckDatabase(db)
    journals = CallJournals(stuck, drain_timeout_s=0.2)  # type: ignore[arg-type]
    async with journals.hold(call_id, client_id) as journal:
        for i in range(10):  # never blocks the caller, whatever the database does
            journal.turns([TranscriptTurn(speaker="caller", text=str(i), at=NOW)])
        assert journal.dropped >= 4
    # The end of the call waited 0.2 s for the database, then gave up the rest.
    assert journal.task.done()
    assert len(journals) == 0


async def test_the_observer_writes_each_turn_with_its_times() -> None:
    class Sink:
        def __init__(self) -> None:
            self.turns: list[tuple[list[TranscriptTurn], Any]] = []

        def turns_(self, turns: list[TranscriptTurn], latency: Any = None) -> None:
            self.turns.append((turns, latency))

    sink = Sink()
    clock = FakeClock(100.0)
    journal: Any = type("J", (), {"turns": sink.turns_})()
    observer = JournalObserver(journal, clock, wall_clock=lambda: NOW)
    observer.agent_spoke("Hello.")
    record = TurnRecord(
        caller_text="Hi",
        agent_text="Hello again",
        interrupted=True,
        speech_end=98.0,
        turn_end=98.5,
        transcript_at=98.7,
        first_token_at=99.0,
        first_audio_at=99.2,
        first_frame_at=99.5,
    )
    observer.turn_finished(record)
    observer.barge_in(BargeIn(onset=99.8, stopped_at=99.9, heard_text="Hello"))
    (greeting, _), (turn, latency) = sink.turns
    assert [(t.speaker, t.text) for t in greeting] == [("agent", "Hello.")]
    caller, agent = turn
    assert (caller.speaker, caller.text, caller.at) == (
        "caller",
        "Hi",
        NOW - dt.timedelta(seconds=1.5),
    )
    assert (agent.text, agent.interrupted, agent.at) == (
        "Hello again",
        True,
        NOW - dt.timedelta(seconds=0.5),
    )
    assert latency["turns"][0]["voice_to_voice"] == 1500.0
    assert observer.snapshot()["barge_in_stop_ms"] == [100.0]
    assert latency["barge_in_stop_ms"] == []  # the queued copy does not change afterwards


async def test_the_calls_a_node_holds_keep_a_heartbeat(db: Database) -> None:
    """Crash recovery settles live calls without a sign of life (docs/telephony.md, "After a
    crash"): every write is one, and the heartbeat is one for each call this node runs and each
    call the phone system reports live."""
    clock = FakeWallClock(NOW)
    journals = CallJournals(db, clock=clock)
    client_id, running = await placed_call(db)
    _, ringing = await placed_call(db)
    _, elsewhere = await placed_call(db)
    async with journals.hold(running, client_id) as journal:
        clock.now = NOW + dt.timedelta(seconds=30)
        journal.turns([TranscriptTurn(speaker="agent", text="Hello.", at=clock.now)])
        assert await journal.drain()
        assert await idle_since(db, NOW + dt.timedelta(seconds=31)) >= {ringing, elsewhere}
        assert running not in await idle_since(db, NOW + dt.timedelta(seconds=30))

        assert journals.held_calls() == [running]
        clock.now = NOW + dt.timedelta(minutes=5)
        assert await journals.heartbeat(also=[ringing]) == 2
    idle = await idle_since(db, clock.now)
    assert running not in idle
    assert ringing not in idle
    assert elsewhere in idle
    assert journals.held_calls() == []
    assert await journals.heartbeat() == 0


class FakeWallClock:
    """The journal's wall clock, set by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


async def idle_since(db: Database, idle_before: dt.datetime) -> set[uuid.UUID]:
    """Live calls without a sign of life since ``idle_before``."""
    return {call.call_id for call in await recovery.idle_calls(db, idle_before, limit=10_000)}
