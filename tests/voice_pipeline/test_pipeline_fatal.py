"""Errors after which a call cannot go on (``VoicePipeline(fatal=...)``, docs/inference.md "When
a worker dies"): on scripted fakes and a fast clock, such an error ends the call - ``run``
raises it, whichever engine raised it and however deep in the reply - while the history keeps
what the caller heard. Any other error still ends only its reply (tests/voice_pipeline/
test_pipeline.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import ChatMessage
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.pipeline import CallLog, PipelineSettings, VoicePipeline
from callagent.voice_pipeline.turns import TurnSettings

from helpers.audio import voice
from helpers.fakes import FakeCall, FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech


class EngineGone(Exception):
    """Stands for the error an engine client raises when its engine is gone."""


class Harness:
    def __init__(self, transcripts: list[str], replies: list[str], *, greet: bool = False):
        self.clock = FakeClock()
        self.call = FakeCall(self.clock, 8000)
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
            fatal=(EngineGone,),
        )

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(
            self.pipeline.run(
                self.call.inbound(), self.call.send, self.call.hang_up, sample_rate=8000
            )
        )


async def test_a_fatal_llm_error_ends_the_call_with_that_error() -> None:
    h = Harness(["what are your opening hours"], [])

    async def gone(messages: list[ChatMessage]) -> AsyncIterator[str]:
        raise EngineGone("llm")
        yield ""  # an async generator, like the real stream

    h.llm.stream = gone  # type: ignore[method-assign]
    call = h.start()
    await h.call.wait(0.1)
    await h.call.play(voice(1.0))
    await h.call.wait_until(call.done)
    with pytest.raises(EngineGone, match="llm"):
        await call  # not wrapped in the reply's task group
    (turn,) = h.log.turns
    assert turn.caller_text == "what are your opening hours"
    assert turn.interrupted
    assert not h.call.hung_up  # the call's owner decides what the caller hears next


async def test_a_fatal_tts_error_mid_reply_keeps_what_was_heard() -> None:
    h = Harness(["tell me about the warranty"], ["It lasts ten years. And it covers the roof."])
    synthesize = h.tts.synthesize
    clauses = 0

    async def second_clause_fails(text: str) -> AsyncIterator[bytes]:
        nonlocal clauses
        clauses += 1
        if clauses == 2:
            raise EngineGone("tts")
        async for chunk in synthesize(text):
            yield chunk

    h.tts.synthesize = second_clause_fails  # type: ignore[method-assign]
    call = h.start()
    await h.call.wait(0.1)
    await h.call.play(voice(1.0))
    await h.call.wait_until(call.done)
    with pytest.raises(EngineGone, match="tts"):
        await call
    # The first clause was queued whole and played out; the second never had audio.
    (turn,) = h.log.turns
    assert turn.interrupted
    assert turn.agent_text == "It lasts ten years."
    last = h.conversation.history[-1]
    assert last["role"] == "assistant"
    assert last["content"].startswith("It lasts ten years.")  # marked as cut off after it
    assert "roof" not in last["content"]


async def test_a_fatal_error_of_the_greeting_ends_the_call() -> None:
    h = Harness([], [], greet=True)

    async def gone(text: str) -> AsyncIterator[bytes]:
        raise EngineGone("tts")
        yield b""

    h.tts.synthesize = gone  # type: ignore[method-assign]
    call = h.start()
    await h.call.wait_until(call.done)
    with pytest.raises(EngineGone):
        await call
    assert h.log.agent_lines == []
