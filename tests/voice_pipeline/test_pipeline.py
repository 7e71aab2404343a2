"""The conversation loop on scripted fakes and a fast, deterministic clock, and one agent reply
as one handle (:class:`Reply`): it ends exactly once, and the caller's side of it (the audio on
the line, the dialog history, the call log) shows that."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

import numpy as np
import pytest

from callagent.dialog.actions import ActionKind, ActionLog
from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import ChatMessage
from callagent.voice_pipeline.clock import FakeClock, settle
from callagent.voice_pipeline.pipeline import (
    CallLimits,
    CallLog,
    PipelineSettings,
    Reply,
    TurnRecord,
    VoicePipeline,
)
from callagent.voice_pipeline.playback import PacedOutput, SpokenSegment
from callagent.voice_pipeline.stt import Transcript
from callagent.voice_pipeline.turns import TurnSettings

from helpers.audio import cough, noise, rms, voice
from helpers.fakes import FakeCall, FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

LONG_REPLY = (
    "Our panels come with a twenty five year warranty, and the survey is free, "
    "and it takes about forty five minutes, and we can come any weekday you like."
)


class Harness:
    def __init__(
        self,
        transcripts: list[str],
        replies: list[str],
        *,
        greet: bool = False,
        rate: int = 8000,
        inbound_rate: int | None = None,
        limits: CallLimits | None = None,
        prefixes: list[str] | None = None,
        actions: ActionLog | None = None,
        speculate: bool = False,
    ):
        self.clock = FakeClock()
        self.rate = rate  # the call's rate, as its connection knows it from the start
        self.call = FakeCall(self.clock, inbound_rate or rate)
        self.stt = FakeSpeechToText(self.clock, transcripts)
        if prefixes is not None:
            self.stt = PrefixSpeechToText(self.clock, prefixes)
        self.tts = FakeTextToSpeech(self.clock)
        self.llm = FakeLanguageModel(self.clock, replies)
        self.conversation = Conversation(DEFAULT_AGENT, self.llm, actions=actions)
        self.log = CallLog()
        self.pipeline = VoicePipeline(
            self.stt,
            self.tts,
            self.conversation,
            self.clock,
            PipelineSettings(
                greet=greet,
                turns=TurnSettings(end_silence_s=0.4, speculate=speculate),
                limits=limits or CallLimits(),
            ),
            self.log,
        )

    def start(self) -> asyncio.Task[None]:
        """The call connects: the pipeline runs from now on."""
        return asyncio.create_task(
            self.pipeline.run(
                self.call.inbound(), self.call.send, self.call.hang_up, sample_rate=self.rate
            )
        )


class PrefixSpeechToText(FakeSpeechToText):
    """Returns the scripted texts one per transcription: the turn so far at each pause, as
    Whisper hears more of it."""

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        self.heard.append(pcm)
        text = self.transcripts.pop(0) if self.transcripts else ""
        await self.clock.sleep_until(self.clock.now() + self.delay_s)
        return Transcript(text)


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[Harness]:
    task = h.start()
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


async def test_the_agent_greets_before_the_first_frame_and_keeps_the_line_alive() -> None:
    """A real Asterisk sends no frame until the caller's RTP arrives (DESIGN.md "Known
    traps"): the greeting and the paced silence after it must not wait for one."""
    h = Harness(["do you install solar panels"], ["Yes we do."], greet=True)
    task = h.start()
    try:
        # 6 s: the greeting with its AI disclosure lasts longer than 3 s on the fake TTS.
        await h.call.no_media(6.0)
        assert h.log.agent_lines == [DEFAULT_AGENT.greeting_text()]
        assert h.call.agent_audio_times()[0] < 0.3
        times = [t for t, _ in h.call.sent]
        assert len(times) >= 295  # one frame every 20 ms for 6 s, greeting then silence
        assert all(abs(b - a - 0.02) < 1e-6 for a, b in itertools.pairwise(times))
        assert {len(pcm) for _, pcm in h.call.sent} == {320}
        # The caller's media starts late; the conversation goes on as usual.
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.log.turns))
    finally:
        h.call.end()
        await h.clock.advance(0.02)
        await asyncio.wait_for(task, 5)
    assert h.log.turns[0].caller_text == "do you install solar panels"
    assert h.log.turns[0].agent_text == "Yes we do."


async def test_a_wideband_call_speaks_at_16_khz_before_any_frame_arrives() -> None:
    h = Harness([], [], greet=True, rate=16000)
    task = h.start()
    try:
        await h.call.no_media(0.5)
    finally:
        h.call.end()
        await h.clock.advance(0.02)
        await asyncio.wait_for(task, 5)
    assert h.call.agent_audio_times()
    assert {len(pcm) for _, pcm in h.call.sent} == {640}  # 20 ms at 16 kHz, kind 0x12


async def test_caller_audio_at_another_rate_than_the_calls_is_resampled_and_heard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The connection said 16 kHz, the caller's frames come at 8 kHz (a dialplan rendered from
    other settings): the caller is still understood and answered at the call's rate, and the
    mismatch is logged once."""
    h = Harness(["what does it cost"], ["About ten grand."], rate=16000, inbound_rate=8000)
    async with running(h):
        await h.call.play(voice(1.0, rate=8000))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert h.log.turns[0].caller_text == "what does it cost"
    assert h.log.turns[0].agent_text == "About ten grand."
    # The STT got the caller's turn at 16 kHz: about twice the bytes of the 8 kHz speech.
    assert len(h.stt.heard[-1]) >= 1.5 * len(voice(1.0, rate=8000))
    assert {len(pcm) for _, pcm in h.call.sent} == {640}
    mismatch = [r for r in caplog.records if "8000 Hz on a 16000 Hz call" in r.getMessage()]
    assert len(mismatch) == 1


async def test_a_short_pause_inside_a_sentence_does_not_end_the_turn() -> None:
    h = Harness(["I would like a quote please"], ["Sure."])
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.25)  # shorter than the 0.4 s end-of-turn pause
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert len(h.log.turns) == 1
    assert len(h.stt.heard[-1]) >= len(voice(1.6))  # both halves went to STT as one turn


async def test_a_long_pause_after_and_does_not_end_the_turn() -> None:
    """docs/pipeline.md "End of turn": the words of the turn so far decide the pause. A fixed
    0.4 s pause would have answered "…battery and" before the caller went on."""
    h = Harness(
        [],
        ["Sure, both it is."],
        prefixes=["I'd like the bigger battery and", "I'd like the bigger battery and two panels."],
    )
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.9)  # more than twice the default pause
        assert not h.call.agent_audio_times()
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert [t.caller_text for t in h.log.turns] == ["I'd like the bigger battery and two panels."]
    assert not h.log.barge_ins
    # The transcript that ended the turn is the turn's transcript: Whisper ran once per pause.
    assert len(h.stt.heard) == 2


async def test_a_complete_question_is_answered_after_a_shorter_pause() -> None:
    h = Harness(["Can I pay for it monthly?"], ["Yes, over ten years."])
    h.stt.delay_s = 0.05
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.log.turns))
    latency = h.log.turns[0].latency_ms()
    # 0.16 s VAD hang-over + 0.05 s STT, then the 0.25 s short pause: under the 0.4 s default.
    assert latency["end_of_turn"] is not None
    assert latency["end_of_turn"] <= 300
    assert latency["stt"] == 0  # decided on the transcript the reply then used
    assert len(h.stt.heard) == 1


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


# One reply, on a paced line of its own.
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


# Caller silence and call length (CallLimits): decided on the clock, not on inbound frames.
SHORT = CallLimits(silence_prompt_s=2.0, silence_end_s=3.0, max_call_s=None)


async def test_a_silent_caller_is_asked_once_then_the_agent_says_goodbye_and_hangs_up() -> None:
    h = Harness([], [], greet=True, limits=SHORT)
    async with running(h):
        await h.call.wait_until(lambda: h.call.hung_up, max_seconds=30)
    greeting, prompt, goodbye = h.log.agent_lines
    assert greeting == DEFAULT_AGENT.greeting_text()
    assert (prompt, goodbye) == (SHORT.silence_prompt, SHORT.silence_goodbye)
    # Quiet is counted from the end of what the agent said, not while it speaks.
    speech = h.call.agent_audio_times()
    bursts = [t for a, t in itertools.pairwise(speech) if t - a > 0.5]
    prompt_start, goodbye_start = bursts
    greeting_end = max(t for t in speech if t < prompt_start)
    assert 2.0 <= prompt_start - greeting_end <= 2.2
    prompt_end = max(t for t in speech if t < goodbye_start)
    assert 3.0 <= goodbye_start - prompt_end <= 3.2
    # The goodbye was played out before the line was closed.
    assert speech[-1] < h.clock.now()
    assert h.conversation.history[-1]["content"].endswith(SHORT.silence_goodbye)


async def test_a_caller_whose_audio_never_arrives_is_asked_and_then_hung_up_on() -> None:
    """No frame at all (a silent peer holding a call, or RTP that never starts): the
    watchdog runs on the clock, so the call still ends."""
    h = Harness([], [], greet=True, limits=SHORT)
    task = h.start()
    try:
        for _ in range(20 * 50):
            if h.call.hung_up:
                break
            await h.call.no_media(0.02)
        assert h.call.hung_up
    finally:
        h.call.end()
        await h.clock.advance(0.02)
        await asyncio.wait_for(task, 5)
    assert h.log.agent_lines[1:] == [SHORT.silence_prompt, SHORT.silence_goodbye]


async def test_a_caller_who_answers_the_prompt_keeps_the_call() -> None:
    h = Harness(["yes sorry I am here"], ["Great, how can I help?"], limits=SHORT)
    async with running(h):
        await h.call.wait_until(lambda: SHORT.silence_prompt in h.log.agent_lines)
        await h.call.wait_until(lambda: h.call.agent_is_silent_since(0.3))
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: bool(h.log.turns))
        await h.call.wait(2.5)  # less than prompt + end: the conversation is on again
        assert not h.call.hung_up
    assert h.log.turns[0].agent_text == "Great, how can I help?"
    assert SHORT.silence_goodbye not in h.log.agent_lines


async def test_a_talking_caller_is_never_prompted() -> None:
    h = Harness(["one", "two", "three"], ["Okay.", "Sure.", "Right."], limits=SHORT)
    async with running(h):
        for _ in range(3):
            await h.call.play(voice(1.0))
            await h.call.wait(1.5)  # answer, then the caller speaks again within 2 s
        assert not h.call.hung_up
    assert SHORT.silence_prompt not in h.log.agent_lines
    assert [t.agent_text for t in h.log.turns] == ["Okay.", "Sure.", "Right."]


async def test_the_call_length_limit_cuts_the_agent_short_says_why_and_hangs_up() -> None:
    limits = CallLimits(silence_prompt_s=None, max_call_s=4.0)
    h = Harness(["tell me everything"], [LONG_REPLY], limits=limits)
    async with running(h):
        await h.call.play(voice(1.0))
        await h.call.wait_until(lambda: h.call.hung_up, max_seconds=30)
        ended = h.clock.now()
    (turn,) = h.log.turns
    assert turn.interrupted  # the long reply was cut at the limit...
    assert LONG_REPLY.startswith(turn.agent_text.rstrip(" ,"))
    assert not h.log.barge_ins  # ...which is no barge-in
    assert h.log.agent_lines == [limits.max_call_goodbye]
    speech = h.call.agent_audio_times()
    closing = [t for t in speech if t >= 4.0]
    assert closing
    assert closing[0] - 4.0 <= 0.2  # the closing line follows at once
    assert ended - 4.0 <= limits.closing_grace_s
    assert h.conversation.history[-1]["content"].endswith(limits.max_call_goodbye)


async def test_an_answer_withdrawn_before_it_was_heard_takes_no_action() -> None:
    # "Please don't call me again." - a pause long enough to end the turn - "Actually, wait…":
    # the do-not-call answer was decided but not yet audible when the caller went on.
    actions = ActionLog()
    dont_call = "Please don't call me again."
    whole = "Please don't call me again. Actually, wait, what do the panels cost?"
    h = Harness([], [], prefixes=[dont_call, whole], actions=actions)
    h.tts.delay_s = 1.0  # the answer is still being voiced when the caller resumes
    async with running(h):
        await h.call.play(voice(0.6))
        await h.call.wait(0.5)  # the turn ends after 0.25 s; the rules answer at once
        assert len(h.stt.heard) == 1
        await h.call.play(voice(0.8))  # the caller goes on before hearing anything
        assert actions.taken == []
        assert not h.conversation.end_call_requested
        assert not h.log.turns
        # The whole turn's answer is heard: its do-not-call is taken, once, and the call ends.
        await h.call.wait_until(lambda: h.call.hung_up)
    assert [a.kind for a in actions.taken] == [ActionKind.SET_DO_NOT_CALL]
    assert [t.caller_text for t in h.log.turns] == [whole]


async def test_an_answer_the_caller_heard_takes_its_action_even_when_interrupted() -> None:
    actions = ActionLog(can_transfer=True)
    h = Harness(["Can I talk to a person please?", "hello"], [], actions=actions)
    h.tts.seconds_per_word = 0.4  # a long confirmation the caller talks over
    async with running(h):
        await h.call.play(voice(0.6))
        await h.call.wait_until(lambda: bool(h.call.agent_audio_times()))
        await h.call.wait(0.3)
        await h.call.play(voice(0.6))  # barge-in: the hand-over was heard being announced
        await h.call.wait_until(lambda: bool(h.log.barge_ins))
    assert [a.kind for a in actions.taken] == [ActionKind.TRANSFER]


async def test_the_model_is_warmed_for_the_call_while_the_greeting_plays() -> None:
    h = Harness(["hi"], ["Hello."], greet=True)
    async with running(h):
        await h.call.wait(0.2)
        assert h.call.agent_audio_times()  # the greeting is playing
        prompt = h.conversation.messages_for("hi")[0]["content"]
        assert h.llm.warmed == [(prompt, "")]
        assert h.llm.requests == []


async def test_a_speculative_answer_starts_in_the_pause_and_is_heard_once_the_turn_ends() -> None:
    asked = "Tell me more about the panels and"  # a trailing "and": the turn waits 1.5 s
    h = Harness([], ["Sure, I can do that."], prefixes=[asked], speculate=True)
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.6)  # the words are heard; the pause has not ended the turn
        assert len(h.llm.requests) == 1  # the answer is under way
        assert not h.call.agent_audio_times()  # and nothing of it is heard
        await h.call.wait_until(lambda: bool(h.log.turns))
    (turn,) = h.log.turns
    assert turn.speculative
    assert turn.caller_text == asked
    assert turn.agent_text == "Sure, I can do that."
    assert h.call.agent_audio_times()[0] >= turn.turn_end
    assert len(h.llm.requests) == 1
    assert len(h.stt.heard) == 1


async def test_a_speculative_answer_is_dropped_without_a_sound_when_the_caller_goes_on() -> None:
    first = "Tell me more about the panels and"
    whole = "Tell me more about the panels and the battery."
    h = Harness(
        [],
        ["Sure, the panels and the battery work together, and the survey is free.", "Of course."],
        prefixes=[first, whole],
        speculate=True,
    )
    h.llm.token_delay_s = 0.2  # the speculative answer is still being generated
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.8)  # the answer starts on "…and"; the caller thinks
        assert len(h.llm.requests) == 1
        await h.call.play(voice(0.8))  # and goes on
        await h.call.wait_until(lambda: bool(h.log.turns))
        await h.call.wait_until(lambda: h.call.agent_is_silent_since(0.3))
    (turn,) = h.log.turns
    assert turn.caller_text == whole
    assert not turn.speculative  # the answer to the whole turn began when it ended
    assert h.call.agent_audio_times()[0] >= turn.turn_end  # nothing was heard before
    assert h.tts.spoken == ["Of course."]
    assert h.llm.stopped_early == 1  # the model was let go at once
    assert h.conversation.history == [
        {"role": "user", "content": whole},
        {"role": "assistant", "content": "Of course."},
    ]


async def test_a_caller_who_hangs_up_inside_a_pause_leaves_no_speculative_answer() -> None:
    asked = "Tell me more about the panels and"
    h = Harness([], ["Sure, here is more."], prefixes=[asked], speculate=True)
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.6)
        assert len(h.llm.requests) == 1  # an answer was under way, held silent
    # The turn never ended, so it was never answered: nothing of the answer is kept; the
    # caller's words are, as the last turn (docs/pipeline.md "Last words"), from the one
    # transcription of the pause.
    assert [(t.caller_text, t.agent_text, t.hung_up) for t in h.log.turns] == [(asked, "", True)]
    assert h.conversation.history == [{"role": "user", "content": asked}]
    assert h.tts.spoken == []
    assert len(h.stt.heard) == 1


async def test_a_do_not_call_said_just_before_hanging_up_is_kept_and_taken() -> None:
    """The caller hangs up inside the end-of-turn pause: the words are transcribed, stored as
    the last turn with no answer, and the do-not-call rule takes them (docs/pipeline.md "Last
    words")."""
    actions = ActionLog()
    words = "Please don't call me again and"  # "and": the pause would run 1.5 s
    h = Harness([words], ["Of course."], actions=actions)
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.3)  # inside the pause: the turn has not ended
        assert not h.log.turns
    assert [(t.caller_text, t.agent_text, t.hung_up) for t in h.log.turns] == [(words, "", True)]
    assert [a.kind for a in actions.taken] == [ActionKind.SET_DO_NOT_CALL]
    assert h.conversation.history == [{"role": "user", "content": words}]
    assert h.tts.spoken == []  # nothing is said
    assert not h.call.agent_audio_times()
    assert h.llm.requests == []  # nobody to answer


async def test_a_caller_who_hangs_up_mid_sentence_has_the_words_kept_without_an_answer() -> None:
    actions = ActionLog(can_transfer=True)
    h = Harness(["Can I talk to a person"], [], actions=actions)
    async with running(h):
        await h.call.play(voice(0.8))
        h.call.end()  # the line goes while the caller is still speaking
        await h.call.wait(0.3)  # the last words are transcribed (0.1 s of scripted STT)
    assert [(t.caller_text, t.agent_text) for t in h.log.turns] == [("Can I talk to a person", "")]
    assert actions.taken == []  # a hand-over needs the caller on the line


async def test_a_caller_who_hangs_up_before_the_answer_is_heard_has_the_words_kept() -> None:
    actions = ActionLog()
    words = "Just take me off your list."
    h = Harness([words], [], actions=actions)
    h.tts.delay_s = 1.0  # the answer is still being voiced when the line goes
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait(0.7)  # the turn ended, the rules answered, nothing audible yet
        assert not h.call.agent_audio_times()
    assert [(t.caller_text, t.agent_text, t.hung_up) for t in h.log.turns] == [(words, "", True)]
    assert [a.kind for a in actions.taken] == [ActionKind.SET_DO_NOT_CALL]  # once
    assert h.conversation.history == [{"role": "user", "content": words}]


async def test_a_hang_up_in_a_burst_too_short_to_be_speech_keeps_nothing() -> None:
    actions = ActionLog()
    h = Harness(["Please don't call me again."], [], actions=actions)
    async with running(h):
        await h.call.play(voice(0.06))  # a click of voice, shorter than any word
    assert h.log.turns == []
    assert h.stt.heard == []  # nothing went to STT, so Whisper could invent nothing
    assert actions.taken == []


async def test_a_speculative_answer_that_fails_is_answered_afresh_when_the_turn_ends() -> None:
    asked = "Tell me more about the panels and"
    h = Harness([], [], prefixes=[asked], speculate=True)
    replies = iter([None, "Sure, here is more."])

    async def fail_first(messages: list[ChatMessage]) -> AsyncIterator[str]:
        h.llm.requests.append(messages)
        reply = next(replies)
        if reply is None:
            raise RuntimeError("the model failed")
        yield reply

    h.llm.stream = fail_first  # type: ignore[method-assign]
    async with running(h):
        await h.call.play(voice(0.8))
        await h.call.wait_until(lambda: bool(h.log.turns))
    assert [(t.caller_text, t.agent_text) for t in h.log.turns] == [(asked, "Sure, here is more.")]
    assert len(h.llm.requests) == 2
    assert h.conversation.history == [
        {"role": "user", "content": asked},
        {"role": "assistant", "content": "Sure, here is more."},
    ]
