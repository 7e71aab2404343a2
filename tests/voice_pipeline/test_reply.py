"""One agent reply as one handle: it ends exactly once, and the caller's side of it (the
audio on the line, the dialog history, the call log) shows that."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.voice_pipeline.clock import FakeClock, settle
from callagent.voice_pipeline.pipeline import CallLog, Reply, TurnRecord
from callagent.voice_pipeline.playback import PacedOutput, SpokenSegment

from helpers.audio import rms
from helpers.fakes import FakeLanguageModel

RATE = 8000
ANSWER = "Our panels come with a twenty five year warranty and the survey is free."


def tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()


class Line:
    """Paced output onto a recorded line, with the dialog and call log a reply reports to."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.sent: list[tuple[float, bytes]] = []
        self.output = PacedOutput(self.send, RATE, self.clock)
        self.conversation = Conversation(DEFAULT_AGENT, FakeLanguageModel(self.clock, []))
        self.log = CallLog()

    async def send(self, pcm: bytes) -> None:
        self.sent.append((self.clock.now(), pcm))

    def reply(self, caller_text: str = "tell me about the warranty") -> Reply:
        return Reply(
            record=TurnRecord(caller_text=caller_text),
            output=self.output,
            clock=self.clock,
            responder=self.conversation,
            observer=self.log,
            caller_pcm=b"\0\0" * RATE,
        )

    def say(self, reply: Reply, text: str = ANSWER, seconds: float = 2.0) -> None:
        """Start ``reply`` speaking ``text`` for ``seconds``; it settles once played out."""

        async def speak() -> None:
            segment = SpokenSegment(text)
            reply.segments.append(segment)
            self.output.enqueue(tone(seconds), segment)
            await self.output.wait_idle()
            reply.settle()

        reply.start(speak)

    def speech_times(self) -> list[float]:
        return [t for t, pcm in self.sent if rms(pcm) > 0.01]


@contextlib.asynccontextmanager
async def line() -> AsyncIterator[Line]:
    ln = Line()
    pacer = asyncio.create_task(ln.output.run())
    await settle()  # the pacer starts its 20 ms clock
    try:
        yield ln
    finally:
        pacer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacer


async def test_a_reply_that_played_out_is_kept_whole_once_even_if_settled_again() -> None:
    async with line() as ln:
        reply = ln.reply()
        ln.say(reply)
        await ln.clock.advance(2.5)
        assert reply.done
        reply.settle(cut_short=True)  # the call ends afterwards: nothing more to record
    (turn,) = ln.log.turns
    assert turn.agent_text == ANSWER
    assert not turn.interrupted
    assert ln.conversation.history == [
        {"role": "user", "content": "tell me about the warranty"},
        {"role": "assistant", "content": ANSWER},
    ]


async def test_speech_after_the_reply_played_out_is_no_barge_in() -> None:
    async with line() as ln:
        reply = ln.reply()
        ln.say(reply)
        await ln.clock.advance(2.5)
        assert reply.interrupt(onset=ln.clock.now()) is None
    assert not ln.log.barge_ins
    assert ln.conversation.history[-1] == {"role": "assistant", "content": ANSWER}


async def test_barge_in_silences_the_line_and_keeps_only_what_was_played_once() -> None:
    async with line() as ln:
        reply = ln.reply()
        ln.say(reply)
        await ln.clock.advance(0.7)
        onset = ln.clock.now()
        barge_in = reply.interrupt(onset)
        assert reply.interrupt(onset) is None  # the caller goes on talking: still one barge-in
        reply.settle(cut_short=True)  # and then hangs up: still one turn
        await ln.clock.advance(1.0)
        assert reply.task is not None
        assert reply.task.cancelled()
    assert barge_in is not None
    assert barge_in.stop_ms == 0
    assert max(ln.speech_times()) <= onset  # not one more frame of the reply after the onset
    assert ln.log.barge_ins == [barge_in]
    (turn,) = ln.log.turns
    assert turn.interrupted
    assert turn.agent_text == barge_in.heard_text
    assert turn.agent_text
    assert ANSWER.startswith(turn.agent_text)
    assert len(turn.agent_text) < len(ANSWER) / 2
    assert ln.conversation.history[-1] == {"role": "assistant", "content": turn.agent_text + " —"}


async def test_the_call_ending_mid_reply_keeps_what_was_played() -> None:
    async with line() as ln:
        reply = ln.reply()
        ln.say(reply)
        await ln.clock.advance(1.0)
        reply.settle(cut_short=True)
        await ln.clock.advance(1.5)
    assert not ln.log.barge_ins  # hanging up is not barging in
    (turn,) = ln.log.turns
    assert turn.interrupted
    assert ANSWER.startswith(turn.agent_text)
    assert 0 < len(turn.agent_text) < len(ANSWER)
    assert ln.conversation.history[-1]["content"] == turn.agent_text + " —"


async def test_a_withdrawn_reply_leaves_no_trace() -> None:
    async with line() as ln:
        never_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reply = ln.reply()
        reply.early_transcript = asyncio.ensure_future(never_done)

        async def think() -> None:
            await never_done

        reply.start(think)
        reply.withdraw()  # before its task even ran
        reply.settle(cut_short=True)
        assert reply.interrupt(onset=ln.clock.now()) is None
        await ln.clock.advance(0.1)
        assert reply.task is not None
        assert reply.task.cancelled()
        assert reply.early_transcript.cancelled()  # the transcription it owned stopped too
    assert not ln.log.turns
    assert not ln.log.barge_ins
    assert ln.conversation.history == []
    assert not ln.speech_times()


async def test_a_failed_reply_is_kept_as_far_as_it_was_played() -> None:
    async with line() as ln:
        reply = ln.reply()

        async def speak_then_fail() -> None:
            segment = SpokenSegment(ANSWER)
            reply.segments.append(segment)
            ln.output.enqueue(tone(2.0), segment)
            await ln.clock.sleep_until(ln.clock.now() + 0.5)
            raise RuntimeError("the TTS engine crashed")

        reply.start(speak_then_fail)
        await ln.clock.advance(0.6)
        assert not reply.done  # what was queued still plays
        await ln.clock.advance(2.0)
        assert reply.done
        assert reply.task is not None
        assert reply.task.done()
        assert not reply.task.cancelled()
        assert reply.task.exception() is None  # only this reply failed, not the call
    (turn,) = ln.log.turns
    assert turn.interrupted
    assert turn.agent_text == ANSWER  # all of its audio was played
