"""Admission control: the node's call count, start-call's reservations, the busy prompt
(docs/telephony.md "Capacity"). Whole calls turned away over TCP are in
tests/integration/test_capacity.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.telephony.admission import (
    RESERVATION_S,
    AtCapacity,
    BusyPrompt,
    CallAdmission,
    turn_away,
)
from callagent.telephony.asterisk.call_tracker import CallEnded, DialOutcome, OriginateResult
from callagent.telephony.call_runner import CallRunner, VoiceEngines
from callagent.telephony.connection import AddressedCall
from callagent.telephony.metrics import CallMetrics
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.frames import AudioFrame, HangUpFrame, InboundFrame, frame_bytes

from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

T = TypeVar("T")


class Seconds:
    """A settable monotonic clock for reservations."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_calls_beyond_capacity_are_refused_until_one_ends() -> None:
    admission = CallAdmission(2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert admission.admit(first, "audiosocket")
    assert admission.admit(second, "sip")
    assert not admission.admit(third, "audiosocket")
    assert not admission.admit(third, "sip")
    assert admission.status() == {"max_active_calls": 2, "active": 2, "reserved": 0, "refused": 2}
    assert admission.refused == {"audiosocket": 1, "sip": 1}
    admission.release(first)
    assert admission.admit(third, "audiosocket")
    assert admission.active == 2


def test_start_call_at_capacity_is_refused_naming_the_capacity() -> None:
    admission = CallAdmission(1)
    admission.admit(uuid.uuid4(), "audiosocket")
    with pytest.raises(AtCapacity) as refused:
        admission.reserve()
    assert "routing.max_active_calls = 1" in refused.value.detail
    assert "1 of 1 calls live" in refused.value.detail
    assert refused.value.code == "at_capacity"
    assert admission.refused["start_call"] == 1


def test_a_placed_call_holds_its_slot_and_takes_it_when_it_connects() -> None:
    admission = CallAdmission(1)
    slot = admission.reserve()
    placed = uuid.uuid4()
    slot.bind(placed)
    # An inbound call meanwhile finds the node full: the slot is the placed call's.
    assert not admission.admit(uuid.uuid4(), "audiosocket")
    with pytest.raises(AtCapacity):
        admission.reserve()
    assert admission.admit(placed, "audiosocket")
    assert (admission.active, admission.reserved) == (1, 0)
    admission.release(placed)
    assert admission.admit(uuid.uuid4(), "audiosocket")


def test_a_placement_that_fails_or_is_not_answered_gives_its_slot_back() -> None:
    admission = CallAdmission(1)
    admission.reserve().cancel()  # the placer said no
    assert admission.reserved == 0
    slot = admission.reserve()
    call_id = uuid.uuid4()
    slot.bind(call_id)
    admission.on_call_event(OriginateResult(call_id, DialOutcome.ANSWERED))
    assert admission.reserved == 1  # answered: its connection is on the way
    admission.on_call_event(OriginateResult(call_id, DialOutcome.BUSY, reason=0, cause=17))
    assert admission.reserved == 0
    other = admission.reserve()
    other_id = uuid.uuid4()
    other.bind(other_id)
    admission.on_call_event(CallEnded(other_id, 16, "Normal Clearing"))
    assert admission.reserved == 0


def test_a_placement_that_never_connects_lapses() -> None:
    clock = Seconds()
    admission = CallAdmission(1, clock=clock)
    admission.reserve().bind(uuid.uuid4())
    clock.now = RESERVATION_S - 1
    assert not admission.admit(uuid.uuid4(), "audiosocket")
    clock.now = RESERVATION_S + 1
    assert admission.reserved == 0
    assert admission.admit(uuid.uuid4(), "audiosocket")


def test_the_scheduler_reserves_without_counting_a_refusal() -> None:
    """docs/scheduler.md "Capacity": a due row that finds the node full waits; no caller was
    turned away, so the refused count (and its metric) stays as it was."""
    admission = CallAdmission(2)
    assert admission.free == 2
    assert admission.admit(uuid.uuid4(), "audiosocket")
    slot = admission.try_reserve()
    assert slot is not None
    assert (admission.free, admission.reserved) == (0, 1)
    assert admission.try_reserve() is None
    assert admission.refused == {}
    slot.cancel()
    assert admission.free == 1


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        CallAdmission(0)


async def on_fake_time(clock: FakeClock, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` while the fake clock ticks on, 20 ms at a time."""
    task = asyncio.create_task(coroutine)
    while not task.done():
        await clock.advance(0.02)
    return await task


class Line:
    """A call connection on a fake clock: records what the agent sends and when."""

    def __init__(self, clock: FakeClock, rate: int = 8000, hang_up_after: int = -1) -> None:
        self.clock = clock
        self.call_id = uuid.uuid4()
        self.remote = "test"
        self.sample_rate = rate
        self.closed = False
        self.sent: list[tuple[float, bytes]] = []
        self.hung_up = False
        self._hang_up_after = hang_up_after

    async def frames(self) -> AsyncIterator[InboundFrame]:
        frame: InboundFrame
        ticks = 0
        while not self.closed:
            if ticks == self._hang_up_after:
                self.closed = True
                frame = HangUpFrame(self.clock.now())
            else:
                frame = AudioFrame(bytes(frame_bytes(self.sample_rate)), 8000, self.clock.now())
            yield frame
            ticks += 1
            await self.clock.sleep_until(self.clock.now() + 0.02)

    async def send_audio(self, pcm: bytes) -> None:
        self.sent.append((self.clock.now(), pcm))

    async def hang_up(self) -> None:
        self.hung_up = True
        self.closed = True


async def test_the_busy_prompt_is_spoken_once_paced_and_the_line_hung_up() -> None:
    clock = FakeClock()
    tts = FakeTextToSpeech(clock, seconds_per_word=0.1)  # type: ignore[arg-type]
    prompt = BusyPrompt(tts, "All our agents are busy. Goodbye.")  # 6 words: 0.6 s
    await on_fake_time(clock, prompt.prepare())
    line = Line(clock)
    await on_fake_time(clock, turn_away(line, prompt, clock))  # type: ignore[arg-type]
    assert line.hung_up
    size = frame_bytes(8000)
    assert all(len(pcm) == size for _, pcm in line.sent)
    # 0.6 s of prompt and 0.3 s of silence after it, one frame per 20 ms.
    assert len(line.sent) == 45
    gaps = [b[0] - a[0] for a, b in zip(line.sent, line.sent[1:], strict=False)]
    assert max(gaps) == pytest.approx(0.02)
    # Rendered once, for every call and rate.
    wide = Line(clock, 16000)
    await on_fake_time(clock, turn_away(wide, prompt, clock))  # type: ignore[arg-type]
    assert len(wide.sent) == 45
    assert len(wide.sent[0][1]) == frame_bytes(16000)
    assert tts.spoken == ["All our agents are busy. Goodbye."]


async def test_a_caller_who_hangs_up_during_the_busy_prompt_ends_it() -> None:
    clock = FakeClock()
    tts = FakeTextToSpeech(clock, seconds_per_word=1.0)  # type: ignore[arg-type]
    prompt = BusyPrompt(tts, "All our agents are busy.")
    line = Line(clock, hang_up_after=10)
    await on_fake_time(clock, turn_away(line, prompt, clock))  # type: ignore[arg-type]
    assert len(line.sent) < 20  # far less than the 5 s prompt
    assert not line.hung_up  # the caller was gone: nothing to hang up


class SipLine(Line):
    """A direct-SIP call: it names both numbers itself (``AddressedCall``)."""

    caller = "+4917012345678"
    dialed = "+4930123456"


async def test_a_direct_sip_call_beyond_capacity_gets_the_prompt_then_a_bye_and_no_llm() -> None:
    clock = FakeClock()
    tts = FakeTextToSpeech(clock, seconds_per_word=0.1)  # type: ignore[arg-type]
    llm = FakeLanguageModel(clock, ["never said"])  # type: ignore[arg-type]
    stt = FakeSpeechToText(clock, [])  # type: ignore[arg-type]
    admission = CallAdmission(1)
    assert admission.admit(uuid.uuid4(), "audiosocket")  # a live call fills the node
    metrics = CallMetrics()
    metrics.watch_admission(admission)
    runner = CallRunner(
        VoiceEngines(stt, tts, llm),  # type: ignore[arg-type]
        DEFAULT_AGENT,
        clock,
        admission=admission,
        busy=BusyPrompt(tts, "All our agents are busy. Goodbye."),
        metrics=metrics,
    )
    line = SipLine(clock, 16000)
    assert isinstance(line, AddressedCall)
    await on_fake_time(clock, runner(line))  # type: ignore[arg-type]
    assert line.hung_up  # on direct SIP: the endpoint's BYE
    assert len(line.sent) == 45  # the prompt and its tail, paced
    assert tts.spoken == ["All our agents are busy. Goodbye."]
    assert llm.requests == []
    assert admission.refused == {"sip": 1}
    assert admission.active == 1  # the live call keeps its slot
    exposition = metrics.exposition().decode()
    assert 'callagent_calls_total{outcome="refused"} 1.0' in exposition
    assert 'callagent_calls_refused_total{via="sip"} 1.0' in exposition
