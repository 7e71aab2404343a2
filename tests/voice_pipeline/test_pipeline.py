"""The conversation loop on scripted fakes and a fast, deterministic clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import ChatMessage
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.pipeline import CallLog, PipelineSettings, VoicePipeline
from callagent.voice_pipeline.turns import TurnSettings

from helpers.audio import cough, noise, voice
from helpers.fakes import FakeCall, FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

LONG_REPLY = (
    "Our panels come with a twenty five year warranty, and the survey is free, "
    "and it takes about forty five minutes, and we can come any weekday you like."
)


class Harness:
    def __init__(
        self, transcripts: list[str], replies: list[str], *, greet: bool = False, rate: int = 8000
    ):
        self.clock = FakeClock()
        self.call = FakeCall(self.clock, rate)
        self.stt = FakeSpeechToText(self.clock, transcripts)
        self.tts = FakeTextToSpeech(self.clock)
        self.llm = FakeLanguageModel(self.clock, replies)
        self.conversation = Conversation(DEFAULT_AGENT, self.llm)
        self.log = CallLog()
        self.pipeline = VoicePipeline(
            self.stt,
            self.tts,
            self.conversation,
            self.clock,
            PipelineSettings(greet=greet, turns=TurnSettings(end_silence_s=0.4)),
            self.log,
        )


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[Harness]:
    task = asyncio.create_task(h.pipeline.run(h.call.inbound(), h.call.send, h.call.hang_up))
    try:
        await h.call.wait(0.1)
        yield h
    finally:
        h.call.end()
        await h.clock.advance(0.02)
        await asyncio.wait_for(task, 5)


async def test_caller_turn_gets_an_answer_with_every_latency_stage_recorded() -> None:
    h = Harness(["do you install solar panels"], ["Yes we do. Where do you live?"])
    async with running(h):
        await h.call.play(voice(1.2))
        await h.call.wait_until(lambda: bool(h.log.turns))
    (turn,) = h.log.turns
    assert turn.caller_text == "do you install solar panels"
    assert turn.agent_text == "Yes we do. Where do you live?"
    latency = turn.latency_ms()
    assert all(value is not None and value >= 0 for value in latency.values()), latency
    # 0.4 s end-of-turn pause + 0.1 s STT + 0.15 s first token + TTS: the stages add up.
    stages = sum(v for k, v in latency.items() if k != "voice_to_voice")  # type: ignore[misc]
    assert latency["voice_to_voice"] == pytest.approx(stages, abs=1.0)
    assert 600 <= latency["voice_to_voice"] <= 900  # type: ignore[operator]
    assert h.conversation.history == [
        {"role": "user", "content": "do you install solar panels"},
        {"role": "assistant", "content": "Yes we do. Where do you live?"},
    ]


async def test_greeting_is_spoken_when_the_call_connects() -> None:
    h = Harness([], [], greet=True)
    async with running(h):
        await h.call.wait_until(lambda: h.call.agent_is_silent_since(0.3))
    assert h.log.agent_lines == [DEFAULT_AGENT.greeting_text()]
    assert h.call.agent_audio_times()[0] < 0.3


async def test_a_short_pause_inside_a_sentence_does_not_end_the_turn() -> None:
    h = Harness(["I would like a quote please"], ["Sure."])
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.25)  # shorter than the 0.4 s end-of-turn pause
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert len(h.log.turns) == 1
    assert len(h.stt.heard[-1]) >= len(voice(1.6))  # both halves went to STT as one turn


async def test_caller_continuing_before_the_agent_speaks_makes_one_turn() -> None:
    h = Harness(["hello I want solar panels"], ["Great choice."])
    h.stt.delay_s = 0.5  # slow STT: the caller resumes while it runs
    async with running(h):
        await h.call.play(voice(0.6))
        await h.call.wait(0.6)  # turn ends after 0.4 s; the answer is still being prepared
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert [t.caller_text for t in h.log.turns] == ["hello I want solar panels"]
    assert len(h.stt.heard[-1]) > len(h.stt.heard[0])  # the last request had both parts
    assert h.conversation.history[0] == {"role": "user", "content": "hello I want solar panels"}


async def test_barge_in_stops_playback_quickly_and_history_keeps_what_was_heard() -> None:
    h = Harness(["tell me about the warranty", "how much is it"], [LONG_REPLY, "About ten grand."])
    h.llm.token_delay_s = 0.15  # generation still running when the caller barges in
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.call.agent_audio_times()))
        await h.call.wait(1.5)  # the agent talks for a while
        onset = h.clock.now()
        await h.call.play(voice(1.0))  # the caller talks over it
        await h.call.wait_until(lambda: len(h.log.turns) == 2)
    (barge_in,) = h.log.barge_ins
    assert barge_in.stop_ms <= 150
    last_interrupted_frame = max(t for t in h.call.agent_audio_times() if t < onset + 1.0)
    assert last_interrupted_frame - onset <= 0.15
    first, second = h.log.turns
    assert first.interrupted
    assert first.agent_text
    assert LONG_REPLY.startswith(first.agent_text.rstrip(" ,"))
    assert len(first.agent_text) < len(LONG_REPLY) / 2
    assert h.conversation.history[1] == {
        "role": "assistant",
        "content": first.agent_text + " —",
    }
    assert h.llm.stopped_early == 1  # the model stopped generating the unheard rest
    assert LONG_REPLY.split(",")[-1].strip() not in h.tts.spoken
    assert second.caller_text == "how much is it"
    assert not second.interrupted


@pytest.mark.parametrize(
    ("name", "sound"),
    [("cough", cough()), ("line noise", noise(1.0)), ("short click of speech", voice(0.06))],
)
async def test_coughs_and_noise_do_not_interrupt_the_agent(name: str, sound: bytes) -> None:
    h = Harness(["tell me about the warranty"], [LONG_REPLY])
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.call.agent_audio_times()))
        await h.call.wait(0.5)
        await h.call.play(sound)
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert not h.log.barge_ins, name
    assert h.log.turns[0].agent_text == LONG_REPLY
    assert len(h.stt.heard) == 1, f"{name} was taken for a caller turn"


async def test_goodbye_is_played_and_then_the_agent_hangs_up() -> None:
    h = Harness(["okay thanks bye"], [])
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: h.call.hung_up)
    assert h.log.turns[0].agent_text == DEFAULT_AGENT.goodbye
    assert not h.llm.requests  # the goodbye does not need the model
    # the whole goodbye went out before the line was closed
    assert h.call.agent_audio_times()[-1] < h.clock.now()


async def test_words_whisper_finds_nothing_in_get_no_answer() -> None:
    h = Harness([""], ["should not be said"])
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(1.5)
    assert not h.log.turns
    assert not h.llm.requests


async def test_keys_the_caller_presses_reach_the_dialog() -> None:
    h = Harness(["which option"], ["You pressed two."])
    async with running(h):
        h.call.press("2")
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert "pressed: 2" in h.llm.requests[0][-1]["content"]


async def test_playback_is_paced_one_frame_per_20_ms_and_silent_when_idle() -> None:
    h = Harness(["hi"], ["Hello there, how can I help you today?"])
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: h.call.agent_is_silent_since(0.2))
    times = [t for t, _ in h.call.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(g - 0.02) < 1e-6 for g in gaps)
    assert all(len(pcm) == 320 for _, pcm in h.call.sent)
    assert any(pcm == bytes(320) for _, pcm in h.call.sent)


async def test_hanging_up_mid_answer_keeps_the_exchange_cut_at_what_was_played() -> None:
    h = Harness(["tell me about the warranty"], [LONG_REPLY])
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.call.agent_audio_times()))
        await h.call.wait(1.0)
    (turn,) = h.log.turns
    assert turn.interrupted
    assert turn.agent_text
    assert LONG_REPLY.startswith(turn.agent_text.rstrip(" ,"))
    assert h.conversation.history[-1]["content"] == turn.agent_text + " —"


async def test_transcription_starts_before_the_end_of_turn_pause_is_over() -> None:
    h = Harness(["what does it cost"], ["About ten thousand dollars."])
    h.stt.delay_s = 0.15  # shorter than the end-of-turn pause left after the VAD hang-over
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    latency = h.log.turns[0].latency_ms()
    # The early transcript was ready when the turn ended: STT adds (almost) nothing.
    assert latency["stt"] is not None
    assert latency["stt"] <= 40


async def test_a_wideband_slin16_call_is_answered_at_16_khz() -> None:
    h = Harness(["hello"], ["Hello, how can I help?"], rate=16000)
    async with running(h):
        await h.call.play(voice(1.0, rate=16000))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert {len(pcm) for _, pcm in h.call.sent} == {640}  # 20 ms at 16 kHz, kind 0x12
    assert h.log.turns[0].agent_text == "Hello, how can I help?"


async def test_a_failed_reply_ends_only_that_reply_and_the_call_goes_on() -> None:
    h = Harness(["tell me about the warranty", "hello are you there"], ["Yes, I am here."])
    stream = h.llm.stream

    async def fail_once(messages: list[ChatMessage]) -> AsyncIterator[str]:
        h.llm.stream = stream  # type: ignore[method-assign]
        raise RuntimeError("the model server went away")
        yield ""  # an async generator, like the real stream

    h.llm.stream = fail_once  # type: ignore[method-assign]
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait(1.0)
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: len(h.log.turns) == 2)
    first, second = h.log.turns
    assert first.caller_text == "tell me about the warranty"
    assert first.interrupted
    assert not first.agent_text
    assert second.agent_text == "Yes, I am here."
    assert h.conversation.history == [
        {"role": "user", "content": "tell me about the warranty hello are you there"},
        {"role": "assistant", "content": "Yes, I am here."},
    ]


async def test_hanging_up_after_a_failed_reply_ends_the_call_cleanly() -> None:
    h = Harness(["tell me about the warranty"], [])

    async def fail(messages: list[ChatMessage]) -> AsyncIterator[str]:
        raise RuntimeError("the model server went away")
        yield ""  # an async generator, like the real stream

    h.llm.stream = fail  # type: ignore[method-assign]
    async with running(h):  # would raise here if the failure escaped the reply
        await h.call.play(voice(1.0))
        await h.call.wait(1.0)
    (turn,) = h.log.turns
    assert turn.caller_text == "tell me about the warranty"
    assert h.conversation.history == [{"role": "user", "content": "tell me about the warranty"}]


async def test_what_caller_and_agent_say_is_logged_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="callagent")
    h = Harness(["my card number is four two"], ["I will not repeat that."])
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.log.turns))
    info = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    debug = " ".join(r.getMessage() for r in caplog.records if r.levelno < logging.INFO)
    assert "card number" not in info
    assert "repeat that" not in info
    assert "my card number is four two" in debug  # still there for whoever debugs a call
    assert "I will not repeat that." in debug
