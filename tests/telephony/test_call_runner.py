"""The call runner binds each call's id to what runs for it: every line logged during a call
carries that call's id, also with two calls at once.

Two loopback calls talk to the real call runner over real AudioSocket connections; the log is
collected through :class:`~callagent.call_logging.CallIdFilter`, as the composition root installs
it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from callagent.call_logging import NO_CALL, install_call_id_logging
from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.modelfiles import ModelProfile
from callagent.store.services import customers
from callagent.store.states import CallStatus
from callagent.telephony.asterisk.call_tracker import InboundCallStarted
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.voice_pipeline.clock import MonotonicClock
from callagent.voice_pipeline.pipeline import PipelineSettings
from callagent.voice_pipeline.stt import WhisperSpeechToText

from fakes.routing_rig import CALLER, make_tenant, number, routing_rig
from helpers import store_fixtures
from helpers.audio import voice
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech
from helpers.voices import flite_available, flite_phone_wav

pytestmark = pytest.mark.timeout(30)


class Collect(logging.Handler):
    """Keeps every record of the ``callagent`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collect() -> Iterator[Collect]:
    handler = Collect()
    install_call_id_logging(handler, set_format=False)
    logger = logging.getLogger("callagent")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_a_calls_log_lines_carry_its_call_id(collect: Collect) -> None:
    clock = MonotonicClock()
    stt = FakeSpeechToText(clock, ["Hello?", "Hello?"])  # type: ignore[arg-type]
    tts = FakeTextToSpeech(clock, seconds_per_word=0.05)  # type: ignore[arg-type]
    llm = FakeLanguageModel(clock, ["Hi there.", "Hi there."])  # type: ignore[arg-type]
    reports: list[CallReport] = []
    runner = CallRunner(
        VoiceEngines(stt, tts, llm), DEFAULT_AGENT, clock, on_call_finished=reports.append
    )
    first, second = uuid.uuid4(), uuid.uuid4()
    async with AudioSocketServer(runner, "127.0.0.1", 0, clock=clock) as server:
        await asyncio.gather(
            *(
                simulate_call(
                    "127.0.0.1",
                    server.port,
                    [voice(0.6, 8000)],
                    call_id=call_id,
                    pause_after_agent_s=0.3,
                    final_wait_s=0.4,
                )
                for call_id in (first, second)
            )
        )
    assert {report.call_id for report in reports} == {first, second}

    calls = {str(first), str(second)}
    by_call: dict[str, set[str]] = {call_id: set() for call_id in calls}
    for record in collect.records:
        if record.name.startswith(("callagent.telephony.call_runner", "callagent.voice_pipeline")):
            # The runner, the pipeline and every task they start log inside the call.
            assert record.call_id in calls, record.getMessage()
            by_call[record.call_id].add(record.name)
        message = record.getMessage()
        for call_id in calls:
            if message.startswith(f"call {call_id}: Asterisk hung up"):
                # Logged by the AudioSocket connection while the runner reads it: that call's.
                assert record.call_id == call_id
        if record.name.startswith("callagent.telephony.asterisk.loopback_caller"):
            assert record.call_id == NO_CALL  # the caller's side is no call of the agent's
    for names in by_call.values():
        assert "callagent.telephony.call_runner" in names
        assert any(name.startswith("callagent.voice_pipeline") for name in names)
    # Which side ends a call, and so which lines the connection logs, is a race of the two
    # sides' timers; whatever it logged about a call carries that call's id.
    transport = [
        r
        for r in collect.records
        if r.name == "callagent.telephony.asterisk.server" and r.getMessage().startswith("call ")
    ]
    assert transport, "the connections logged nothing about their calls"
    for record in transport:
        if record.call_id != NO_CALL:  # "started" comes before the runner binds the call
            assert record.getMessage().startswith(f"call {record.call_id}:"), record.getMessage()


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")  # migrates once per process, outside the loop


async def test_a_stored_call_names_its_recording_from_the_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A call cut off by a crash keeps its recording's name, whichever node settles it
    (docs/telephony.md, "After a crash"): the reference is written as the file opens."""
    did = number()
    async with routing_rig(sqlite_url, tmp_path, dids=[did]) as rig:
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(rig.sim.inbound_call(did, CALLER, (), final_wait_s=5.0))
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        mid = await rig.wait_for_call(tenant.client_id, call_id, lambda d: bool(d.recording_ref))
        assert not call.done()
        channel = rig.sim.live_channel(call_id)
        assert channel is not None
        rig.sim.hang_up(channel, 16)
        await call
    assert (mid.status, mid.recording_ref) == (CallStatus.IN_PROGRESS, f"{call_id}.wav")
    assert (tmp_path / mid.recording_ref).exists()


async def test_a_stranger_reaching_the_port_is_refused_while_asterisks_calls_go_on(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only Asterisk may talk to AudioSocket (``network.audiosocket_accept = announced``): a
    peer with a call id AMI never announced hears nothing and is disconnected, nothing is
    stored; a call the dialplan announced is answered as always."""
    caplog.set_level(logging.WARNING, logger="callagent")
    did = number()
    async with routing_rig(sqlite_url, tmp_path, dids=[did]) as rig:
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        stranger = await simulate_call(
            "127.0.0.1",
            rig.server.port,
            [voice(0.5, 16000)],
            sample_rate=16000,
            max_wait_for_agent_s=3.0,
            final_wait_s=0.2,
        )
        channel = await rig.sim.inbound_call(did, CALLER, (), final_wait_s=0.5)
        await rig.settled()
        stored = await rig.calls_of(tenant.client_id)
    assert stranger.hung_up_by == "agent"
    assert not any(stranger.agent_pcm), "the stranger heard something"
    assert any("AMI did not announce this call id" in r.getMessage() for r in caplog.records)
    # The announced call was answered, and it is the only call stored.
    assert channel.result is not None
    assert any(channel.result.agent_pcm)
    assert [c.id for c in stored.items] == [channel.call_id]
    assert len(rig.reports) == 1


async def test_a_caller_who_hangs_up_after_asking_not_to_be_called_again_is_stored_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The caller says it and hangs up inside the end-of-turn pause (a trailing "and" makes
    it 1.5 s long): the words are in the stored transcript as the last turn, with no answer
    after them, and the customer is on the do-not-call list (docs/pipeline.md "Last words")."""
    words = "Please don't call me again and"
    did = number()
    async with routing_rig(sqlite_url, tmp_path, dids=[did], transcripts=[words]) as rig:
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        channel = await rig.sim.inbound_call(
            did,
            CALLER,
            (voice(0.8, 8000),),
            pause_after_agent_s=0.3,
            max_wait_for_agent_s=0.1,  # after the words: hang up 0.1 s into the pause
            final_wait_s=0.1,
        )
        assert channel.call_id is not None
        call_id = channel.call_id
        detail = await rig.ended(tenant.client_id, call_id)
        (customer,) = (await customers.list_customers(rig.db, tenant.client_id)).items
    assert [(t.speaker, t.text) for t in detail.transcript][-1] == ("caller", words)
    assert [t.speaker for t in detail.transcript].count("caller") == 1
    assert customer.do_not_call
    assert rig.llm.requests == []  # nobody was answered


@pytest.mark.real_models
async def test_last_words_on_a_real_line_are_heard_by_whisper_and_taken(
    ci_models: ModelProfile, tmp_path: Path
) -> None:
    """The same over a real AudioSocket connection with the ``ci`` Whisper and the real VAD: a
    flite caller says it and hangs up 0.1 s later, before the end-of-turn pause is over."""
    if not flite_available():
        if os.environ.get("CI"):
            pytest.fail(
                "flite is not installed: CI must run the real-line test (make test installs it)"
            )
        pytest.skip("flite is not installed")
    wav = flite_phone_wav("Please don't call me again.", tmp_path / "last.wav")
    samples, _ = soundfile.read(str(wav), dtype="int16")
    loud = np.flatnonzero(np.abs(samples) > 300)
    pcm = samples[: loud[-1] + 1].tobytes()  # flite's trailing silence would end the turn
    clock = MonotonicClock()
    engines = VoiceEngines(
        WhisperSpeechToText(ci_models.stt_dir),
        FakeTextToSpeech(clock),  # type: ignore[arg-type]
        FakeLanguageModel(clock, []),  # type: ignore[arg-type]
    )
    reports: list[CallReport] = []
    runner = CallRunner(
        engines, DEFAULT_AGENT, clock, PipelineSettings(greet=False), reports.append
    )
    async with AudioSocketServer(runner, "127.0.0.1", 0, clock=clock) as server:
        result = await simulate_call(
            "127.0.0.1",
            server.port,
            [pcm],
            pause_after_agent_s=0.0,
            max_wait_for_agent_s=0.1,
            final_wait_s=0.0,
        )
        await asyncio.wait_for(_until(lambda: bool(reports)), 10)
    assert result.hung_up_by == "caller"
    (report,) = reports
    (turn,) = report.log.turns
    assert "call me again" in turn.caller_text.lower()
    assert (turn.agent_text, turn.hung_up) == ("", True)  # the line went before the answer
    assert [action["type"] for action in report.actions] == ["set_do_not_call"]


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - the runner reports from its own task
        await asyncio.sleep(0.02)
