"""The conversation loop of one call: listen, decide the turn is over, reply, allow barge-in.

    inbound frames ─► VAD ─► end-of-turn ─► STT ─► responder (LLM stream)
                                                       │ clauses
                        barge-in ◄── caller speech     ▼
                   (drop queue, cancel reply)       TTS ─► resample ─► paced output ─► wire

The pipeline knows nothing of Asterisk or of the dialog: the call runner (telephony) hands it
inbound frames and a ``send`` function, and a :class:`Responder` that produces the replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from callagent.voice_pipeline.audio import StreamResampler
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import (
    FRAME_MS,
    AudioFrame,
    DtmfFrame,
    HangUpFrame,
    InboundFrame,
)
from callagent.voice_pipeline.playback import PacedOutput, SpokenSegment, heard_text
from callagent.voice_pipeline.stt import SpeechToText, Transcript
from callagent.voice_pipeline.text_chunker import ClauseChunker
from callagent.voice_pipeline.tts import TextToSpeech
from callagent.voice_pipeline.turns import EndOfTurnPolicy, TurnSettings
from callagent.voice_pipeline.vad import (
    SpeechEnded,
    SpeechStarted,
    VadSettings,
    VoiceActivityDetector,
)

log = logging.getLogger(__name__)


class Responder(Protocol):
    """The dialog side of a call, as the pipeline sees it."""

    def greeting(self) -> str | None:
        """What the agent says when the call connects (None: wait for the caller)."""
        ...

    async def prepare(self) -> None:
        """Get ready for the caller's first turn while the greeting plays (the dialog puts its
        prompt into the model's cache: docs/pipeline.md "Warm prefix")."""
        ...

    def reply(self, caller_text: str, *, tentative: bool = False) -> AsyncIterator[str]:
        """Stream the agent's answer to ``caller_text`` as text deltas.

        The pipeline asks ``tentative``ly: it may still drop the answer before the caller
        hears any of it, so the responder must not act on it (do-not-call, a hand-over, a
        callback) before :meth:`reply_heard`, and must forget it at :meth:`reply_withdrawn`.
        """
        ...

    def reply_heard(self) -> None:
        """The tentative answer is committed: its first audio is queued for the caller, or its
        turn is over (the reply settled, the call ended). Carry out what it decided."""
        ...

    def reply_withdrawn(self) -> None:
        """The tentative answer is dropped unheard: take none of its actions."""
        ...

    def commit_turn(self, caller_text: str, heard_text: str, interrupted: bool) -> None:
        """Record a finished exchange: what the caller said and what the agent was heard to
        say (cut at the barge-in point when ``interrupted``)."""
        ...

    @property
    def end_call_requested(self) -> bool:
        """True once the agent's last reply was a goodbye: hang up after playing it."""
        ...

    def dtmf(self, digit: str) -> None:
        """The caller pressed a key."""
        ...

    def last_words(self, caller_text: str) -> None:
        """The caller said ``caller_text`` and hung up before it was answered: keep it as the
        last caller turn and carry out what needs no spoken confirmation (docs/pipeline.md
        "Last words"). Nothing can be said any more."""
        ...


@dataclass(slots=True)
class TurnRecord:
    """One caller turn and the agent's answer, with the timeline DESIGN.md asks of every turn.

    Timestamps are on the pipeline's clock; ``latency_ms`` turns them into stage durations.
    """

    caller_text: str = ""
    agent_text: str = ""
    interrupted: bool = False
    speech_end: float = 0.0
    turn_end: float = 0.0
    transcript_at: float | None = None
    first_token_at: float | None = None
    first_audio_at: float | None = None
    first_frame_at: float | None = None
    speculative: bool = False
    """The answer was started on the words of the pause before the pause ended the turn."""
    hung_up: bool = False
    """The caller's last words: the line went before they were answered (no agent text, no
    latency to speak of; docs/pipeline.md "Last words")."""

    def latency_ms(self) -> dict[str, float | None]:
        """Stage durations in ms: end-of-turn wait, STT, first LLM token, first TTS audio,
        first frame on the wire, and the whole voice-to-voice latency."""

        def between(start: float | None, end: float | None) -> float | None:
            if start is None or end is None:
                return None
            return round((end - start) * 1000.0, 1)

        return {
            "end_of_turn": between(self.speech_end, self.turn_end),
            "stt": between(self.turn_end, self.transcript_at),
            "llm_first_token": between(self.transcript_at, self.first_token_at),
            "tts_first_audio": between(self.first_token_at, self.first_audio_at),
            "wire": between(self.first_audio_at, self.first_frame_at),
            "voice_to_voice": between(self.speech_end, self.first_frame_at),
        }


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller spoke over the agent; playback stopped ``stop_ms`` after speech onset."""

    onset: float
    stopped_at: float
    heard_text: str

    @property
    def stop_ms(self) -> float:
        """Caller speech onset → agent audio stopped, in ms."""
        return round((self.stopped_at - self.onset) * 1000.0, 1)


class PipelineObserver(Protocol):
    """Receives what happens on the call, e.g. to persist it or to print it."""

    def turn_finished(self, record: TurnRecord) -> None:
        """A caller turn and the agent's answer are over."""
        ...

    def barge_in(self, event: BargeIn) -> None:
        """The caller interrupted the agent."""
        ...

    def agent_spoke(self, text: str) -> None:
        """The agent said something outside a caller turn (the greeting)."""
        ...


@dataclass
class CallLog:
    """A :class:`PipelineObserver` that keeps everything in memory (CLI, tests, bench)."""

    turns: list[TurnRecord] = field(default_factory=list)
    barge_ins: list[BargeIn] = field(default_factory=list)
    agent_lines: list[str] = field(default_factory=list)

    def turn_finished(self, record: TurnRecord) -> None:
        self.turns.append(record)

    def barge_in(self, event: BargeIn) -> None:
        self.barge_ins.append(event)

    def agent_spoke(self, text: str) -> None:
        self.agent_lines.append(text)


@dataclass(frozen=True, slots=True)
class CallLimits:
    """When the agent ends a call by itself (docs/pipeline.md "Silence and call length").

    After ``silence_prompt_s`` of quiet - the caller says nothing and the agent has nothing
    left to say - the agent asks ``silence_prompt``; after ``silence_end_s`` more it says
    ``silence_goodbye`` and hangs up. A caller whose audio never arrives counts as quiet: the
    timer runs on the clock, not on inbound frames. At ``max_call_s`` the agent stops, says
    ``max_call_goodbye`` and hangs up. ``None`` switches a limit off.
    """

    silence_prompt_s: float | None = 10.0
    silence_end_s: float = 10.0
    max_call_s: float | None = 1800.0
    silence_prompt: str = "Are you still there?"
    silence_goodbye: str = "I can't hear anyone, so I'll end the call now. Goodbye."
    max_call_goodbye: str = "I'm sorry, we have reached the time limit for this call. Goodbye."
    closing_grace_s: float = 15.0
    """Longest a closing line may take before the line is closed anyway."""

    def __post_init__(self) -> None:
        for name in ("silence_prompt_s", "max_call_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if self.silence_end_s <= 0:
            raise ValueError(f"silence_end_s must be positive, got {self.silence_end_s}")


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Everything tunable about turn-taking."""

    vad: VadSettings = field(default_factory=VadSettings)
    turns: TurnSettings = field(default_factory=TurnSettings)
    greet: bool = True
    # Let the last frame of a goodbye play out before the line is closed.
    hang_up_grace_s: float = 0.3
    limits: CallLimits = field(default_factory=CallLimits)
    last_words_s: float = 5.0
    """Longest the caller's unanswered last words may take to transcribe once the line is gone
    (docs/pipeline.md "Last words"); the call's end waits for it."""


class Reply:
    """One agent utterance — the greeting or the answer to a caller turn — as one handle.

    Like livekit agents' speech handle (DESIGN.md practice 4), a reply ends exactly once, in
    one of three ways; whichever comes first wins and the others are no-ops:

    - :meth:`interrupt`: the caller barged in. The audio stops at once, the queue is dropped,
      generation stops, and the history keeps only what was played (DESIGN.md practice 7).
    - :meth:`settle`: it played out, or it failed, or the call ended while it was under way;
      the exchange is kept, cut at what was played when it did not play out.
    - :meth:`withdraw`: it is dropped before the caller heard any of it, and nothing is kept.

    The turn record, the dialog's history and the observer hear about a reply only here, when
    it ends.
    """

    def __init__(
        self,
        *,
        record: TurnRecord,
        output: PacedOutput,
        clock: Clock,
        responder: Responder,
        observer: PipelineObserver,
        caller_pcm: bytes = b"",
        early_transcript: asyncio.Task[Transcript] | None = None,
        speculative: bool = False,
    ) -> None:
        self.record = record
        self.caller_pcm = caller_pcm  # the caller's turn it answers; empty for the greeting
        # Transcription of caller_pcm started before the turn ended, if any; the reply owns it.
        self.early_transcript = early_transcript
        self.segments: list[SpokenSegment] = []  # its clauses handed to playback so far
        self._output = output
        self._clock = clock
        self._responder = responder
        self._observer = observer
        self._task: asyncio.Task[None] | None = None
        self._done = False
        self.started_at = clock.now()
        # The responder is answering tentatively and waits to hear whether the answer stands.
        self._tentative = False
        # A speculative reply is produced but held silent until its turn ends (release()).
        self._released = asyncio.Event()
        if not speculative:
            self._released.set()

    @property
    def held(self) -> bool:
        """True for a speculative reply whose turn has not ended (yet): nothing may play."""
        return not self._released.is_set()

    def release(self, turn_end: float) -> None:
        """The turn this speculative reply answers has ended at ``turn_end``: let it speak.
        What it did before counts from the turn's end (no stage took less than nothing)."""
        record = self.record
        record.turn_end = turn_end
        record.speculative = True
        if record.transcript_at is not None:
            record.transcript_at = max(record.transcript_at, turn_end)
        if record.first_token_at is not None:
            record.first_token_at = max(record.first_token_at, turn_end)
        self._released.set()

    async def wait_released(self) -> None:
        """Until the reply may be heard (at once, for any but a held speculative reply)."""
        await self._released.wait()

    @property
    def audible(self) -> bool:
        """True once some of the reply's audio is queued or played."""
        return any(segment.total_frames for segment in self.segments)

    @property
    def done(self) -> bool:
        """True once the reply has been interrupted, settled or withdrawn."""
        return self._done

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task producing and playing the reply (None before :meth:`start`)."""
        return self._task

    def answer(self, caller_text: str) -> AsyncIterator[str]:
        """The responder's answer to the caller's turn, asked tentatively: what it decides to
        do is carried out only once the reply is committed (:meth:`commit`), never when the
        reply is withdrawn - a caller who goes on talking may have heard nothing of it."""
        self._tentative = True
        return self._responder.reply(caller_text, tentative=True)

    def commit(self) -> None:
        """The reply stands: its first audio is about to be queued, or it ended (settled or
        interrupted). From here it can no longer be withdrawn; the responder acts on it."""
        if self._tentative:
            self._tentative = False
            self._responder.reply_heard()

    def start(self, speak: Callable[[], Awaitable[None]]) -> None:
        """Run ``speak()`` in the reply's task: it produces the reply, queues its audio and
        ends the reply itself (settles it when played out, withdraws it when there is nothing
        to say)."""
        self._task = asyncio.create_task(self._run(speak), name="agent-reply")

    async def _run(self, speak: Callable[[], Awaitable[None]]) -> None:
        try:
            # Called here, not by start(): a reply ended before its task first ran then
            # leaves no coroutine behind that was never awaited.
            await speak()
        except Exception:
            # A failed reply ends only that reply; the call goes on listening. What it queued
            # still plays, so it is settled once that is over and the history holds it.
            log.exception("agent reply failed")
            if self.held:
                # A speculative answer nobody heard, to a turn still open: the turn gets a
                # fresh answer when it ends.
                self.withdraw()
                return
            await self._output.wait_idle()
            self.settle(cut_short=True)
        finally:
            self._cancel_helpers()

    def interrupt(self, onset: float) -> BargeIn | None:
        """The caller started speaking at ``onset`` over this reply: stop it now.

        Returns the barge-in (also reported to the observer), or None when the reply had
        already ended.
        """
        if self._done:
            return None
        self._output.interrupt()
        stopped_at = self._clock.now()
        heard = self._end(interrupted=True)
        barge_in = BargeIn(onset=onset, stopped_at=stopped_at, heard_text=heard)
        log.info("barge-in: playback stopped %.0f ms after speech onset", barge_in.stop_ms)
        self._observer.barge_in(barge_in)
        return barge_in

    def settle(self, *, cut_short: bool = False) -> None:
        """The reply is over: keep the exchange, with what the caller heard of the reply.

        ``cut_short`` when it did not play out (the call ended, or the reply failed); the turn
        is then recorded as interrupted. A no-op once the reply has ended.
        """
        if not self._done:
            self._end(interrupted=cut_short)

    def withdraw(self) -> None:
        """Drop the reply without a trace: stop producing it and keep nothing of it. For a
        reply the caller heard none of (the caller went on talking, or said no words)."""
        if not self._done:
            self._done = True
            self._cancel_task()
            if self._tentative:
                self._tentative = False
                self._responder.reply_withdrawn()

    def _end(self, *, interrupted: bool) -> str:
        """Close the books on the reply: record and commit what the caller heard of it."""
        self.commit()  # the turn is final (DESIGN.md practice 4: a reply ends exactly once)
        self._done = True
        self._cancel_task()
        record = self.record
        record.agent_text = heard = heard_text(self.segments)
        record.interrupted = interrupted
        record.first_frame_at = next(
            (s.first_sent_at for s in self.segments if s.first_sent_at is not None), None
        )
        # The words people say are personal data: only at DEBUG, never in the INFO log.
        log.debug("agent%s: %s", " (cut off)" if interrupted else "", heard)
        if record.caller_text:
            self._responder.commit_turn(record.caller_text, heard, interrupted=interrupted)
            self._observer.turn_finished(record)
        elif heard:  # the greeting
            self._responder.commit_turn("", heard, interrupted=interrupted)
            self._observer.agent_spoke(heard)
        return heard

    def _cancel_task(self) -> None:
        # The reply may end itself from inside its own task (played out, nothing to say):
        # that task is finishing anyway and must not cancel itself.
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        # Also here, not only in _run's finally: a task cancelled before it first ran never
        # executes that finally (DESIGN.md practice 4: no helper task outlives its reply).
        self._cancel_helpers()

    def _cancel_helpers(self) -> None:
        if self.early_transcript is not None:
            self.early_transcript.cancel()  # a no-op once it is done


class VoicePipeline:
    """Runs one call's conversation over a stream of inbound frames."""

    def __init__(
        self,
        stt: SpeechToText,
        tts: TextToSpeech,
        responder: Responder,
        clock: Clock,
        settings: PipelineSettings | None = None,
        observer: PipelineObserver | None = None,
        *,
        fatal: tuple[type[Exception], ...] = (),
    ) -> None:
        self._stt = stt
        # Errors after which the call cannot go on (an engine is gone, docs/inference.md): they
        # end the call - run() raises them - instead of only the reply that met them.
        self._fatal = fatal
        self._failed: asyncio.Future[None] | None = None
        self._tts = tts
        self._responder = responder
        self._clock = clock
        self.settings = settings or PipelineSettings()
        self._observer: PipelineObserver = observer or CallLog()
        self._turns = EndOfTurnPolicy(self.settings.turns)
        self._reply: Reply | None = None
        self._utterance = bytearray()
        self._end_call_at: float | None = None
        self._early_stt: asyncio.Task[Transcript] | None = None
        self.speculations = 0
        """Answers started speculatively on this call (docs/pipeline.md "Speculative reply")."""
        # Caller silence and call length (CallLimits): the watchdog's state.
        self._quiet_since: float | None = None
        self._prompted = False
        self._closing: Reply | None = None  # the line said before the agent hangs up
        self._close_by: float | None = None
        self._resamplers: dict[int, StreamResampler] = {}
        self._rate = 8000  # the call's rate, set by run()

    async def run(
        self,
        inbound: AsyncIterator[InboundFrame],
        send: Callable[[bytes], Awaitable[None]],
        hang_up: Callable[[], Awaitable[None]],
        *,
        sample_rate: int,
    ) -> None:
        """Converse until the caller hangs up, the inbound stream ends, or the agent ends the
        call (a goodbye, caller silence, the call-length limit). Every helper task is
        cancelled on the way out (DESIGN.md practice 4).

        ``sample_rate`` is the call's rate, known when it connects (the dialplan fixes it for
        AudioSocket, the endpoint for SIP): output starts at once, greeting and all, because a
        real Asterisk sends no frame until the caller's RTP arrives, so the first inbound
        frame may come late or never (DESIGN.md "Known traps"). The paced silence also keeps
        Asterisk's 2 s inactivity timer from firing.
        """
        self._rate = sample_rate
        output = PacedOutput(send, sample_rate, self._clock)
        vad = VoiceActivityDetector(sample_rate, self.settings.vad)
        pacer_task = asyncio.create_task(output.run(), name="paced-output")
        self._failed = asyncio.get_running_loop().create_future()
        started = self._clock.now()
        listener: asyncio.Task[None] | None = None
        watchdog: asyncio.Task[None] | None = None
        warming: asyncio.Task[None] | None = None
        try:
            greeting = self._responder.greeting() if self.settings.greet else None
            if greeting:
                self._start_reply(output, caller_text="", fixed_text=greeting)
            # While the greeting plays: the first reply then pays only for the caller's words.
            warming = asyncio.create_task(self._responder.prepare(), name="warm-prefix")
            listener = asyncio.create_task(self._listen(inbound, vad, output), name="listen")
            watchdog = asyncio.create_task(self._watch(output, started), name="call-watchdog")
            done, _ = await asyncio.wait(
                {listener, watchdog, self._failed}, return_when=asyncio.FIRST_COMPLETED
            )
            if watchdog in done and watchdog.exception() is None:
                await hang_up()  # the agent ends the call
            for task in done:
                task.result()  # a failure of either (or a fatal one of a reply) is the call's
        finally:
            # The caller hung up (or the line went): not the agent ending the call, nor a
            # failure, nor the call runner cancelling the conversation (an answering machine).
            caller_left = (
                listener is not None
                and listener.done()
                and not listener.cancelled()
                and listener.exception() is None
            )
            self._failed.cancel()  # a no-op once it holds the call's failure
            for task in (listener, watchdog, warming):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await self._finish(pacer_task, caller_left=caller_left)

    async def _listen(
        self, inbound: AsyncIterator[InboundFrame], vad: VoiceActivityDetector, output: PacedOutput
    ) -> None:
        """Hand the caller's frames on until the caller hangs up or the stream ends."""
        async for frame in inbound:
            if isinstance(frame, HangUpFrame):
                return
            if isinstance(frame, DtmfFrame):
                self._responder.dtmf(frame.digit)
                continue
            if frame.sample_rate != output.sample_rate:
                frame = self._to_call_rate(frame, output.sample_rate)
                if not frame.pcm:
                    continue
            self._on_audio(frame, vad, output)

    def _to_call_rate(self, frame: AudioFrame, rate: int) -> AudioFrame:
        """A frame at another rate than the call's, resampled to it (soxr, DESIGN.md
        "Contracts"). The connection said which rate the call has; a peer that sends another
        one is misconfigured (e.g. a dialplan rendered from other settings), and the caller is
        still heard."""
        resampler = self._resamplers.get(frame.sample_rate)
        if resampler is None:
            log.warning(
                "caller audio arrives at %d Hz on a %d Hz call; resampling it (the dialplan and "
                "the settings disagree about the call's rate)",
                frame.sample_rate,
                rate,
            )
            resampler = self._resamplers[frame.sample_rate] = StreamResampler(
                frame.sample_rate, rate
            )
        return AudioFrame(resampler.process(frame.pcm), rate, frame.timestamp)

    async def _watch(self, output: PacedOutput, started: float) -> None:
        """Decides, on the clock, when the agent ends the call; returns to end it.

        Inbound frames may never come (see :meth:`run`), so nothing here waits for one.
        """
        limits = self.settings.limits
        tick = started
        while True:
            # On the 20 ms grid, like the paced output; after a stall it resumes from now.
            tick = max(tick + FRAME_MS / 1000, self._clock.now())
            await self._clock.sleep_until(tick)
            now = self._clock.now()
            if self._end_call_at is not None and now >= self._end_call_at:
                return  # the goodbye or closing line has been played
            if self._close_by is not None and now >= self._close_by:
                log.warning("the closing line did not finish in time; hanging up")
                return
            if self._closing is not None:
                if self._closing.done and self._end_call_at is None:
                    self._end_call_at = now + self.settings.hang_up_grace_s
                continue
            if limits.max_call_s is not None and now - started >= limits.max_call_s:
                log.info("the call reached its %.0f s limit; ending it", limits.max_call_s)
                self._close(output, limits.max_call_goodbye)
                continue
            if limits.silence_prompt_s is None or self._end_call_at is not None:
                continue
            busy = (
                (self._reply is not None and not self._reply.done)
                or self._turns.turn_open
                or output.speaking
            )
            if busy:
                self._quiet_since = None
                continue
            if self._quiet_since is None:
                self._quiet_since = now
            quiet = now - self._quiet_since
            if not self._prompted and quiet >= limits.silence_prompt_s:
                log.info("the caller has been silent for %.0f s; asking", quiet)
                self._prompted = True
                self._start_reply(output, caller_text="", fixed_text=limits.silence_prompt)
            elif self._prompted and quiet >= limits.silence_end_s:
                log.info("the caller stayed silent after the prompt; ending the call")
                self._close(output, limits.silence_goodbye)

    def _close(self, output: PacedOutput, text: str) -> None:
        """Stop whatever is under way, say ``text`` and hang up once it has been played
        (at most ``closing_grace_s`` later). The caller can no longer interrupt."""
        reply = self._reply
        if reply is not None and reply.held:
            reply.withdraw()  # an answer to a turn that never ended
        elif reply is not None and not reply.done:
            output.interrupt()  # drop the unplayed rest first: the history keeps what was heard
            reply.settle(cut_short=True)
        if self._early_stt is not None:
            self._early_stt.cancel()
            self._early_stt = None
        self._utterance.clear()
        self._turns.reset()
        self._start_reply(output, caller_text="", fixed_text=text)
        self._closing = self._reply
        self._close_by = self._clock.now() + self.settings.limits.closing_grace_s

    def _on_audio(self, frame: AudioFrame, vad: VoiceActivityDetector, output: PacedOutput) -> None:
        event = vad.process(frame)
        if self._closing is not None:
            return  # the agent is ending the call: its closing line plays out
        if isinstance(event, SpeechStarted):
            self._on_speech_started(event)
        elif self._turns.turn_open:
            self._utterance += frame.pcm
        if isinstance(event, SpeechEnded):
            self._turns.speech_ended(event.end)
            # Transcribe while the end-of-turn pause runs out: the words decide how long the
            # pause must be (turns.py), and if the caller stays quiet they are the turn's
            # transcript - no second STT run. New speech discards it.
            early = asyncio.create_task(
                self._stt.transcribe(bytes(self._utterance), output.sample_rate),
                name="early-stt",
            )
            early.add_done_callback(functools.partial(self._words_heard, output, event.end))
            self._early_stt = early
        self._end_turn_if_over(output)

    def _words_heard(
        self, output: PacedOutput, speech_end: float, early: asyncio.Task[Transcript]
    ) -> None:
        """The early transcript of the pause that began at ``speech_end`` is ready: let the
        end-of-turn policy judge its words, and end the turn now if they say so."""
        if early is not self._early_stt or early.cancelled() or self._closing is not None:
            return  # the caller spoke again, or the turn is over already
        failed = early.exception()
        # A failure is the reply's to report (it awaits the same task); the pause falls back
        # to the default length.
        text = None if failed is not None else early.result().text
        judged = self._turns.words_heard(text, speech_end)
        if judged is not None:
            log.debug("pause after %r: %s", text, judged.value)
        self._end_turn_if_over(output)
        if (
            self.settings.turns.speculate
            and self._turns.turn_open
            and text
            and text.strip()
            and (self._reply is None or self._reply.done)
        ):
            # The pause has not ended the turn yet: start the answer on these words now,
            # silently. If the caller stays quiet the turn's transcript is this same one
            # (Whisper runs once per pause), so the answer stands; new speech withdraws it.
            record = TurnRecord(speech_end=speech_end)
            self.speculations += 1
            self._start_reply(
                output,
                caller_text=None,
                caller_pcm=bytes(self._utterance),
                record=record,
                early_transcript=early,
                speculative=True,
            )

    def _end_turn_if_over(self, output: PacedOutput) -> None:
        now = self._clock.now()
        if self._turns.turn_complete(now):
            reply = self._reply
            if reply is not None and reply.held and not reply.done:
                # The answer started on this pause's words is already under way: let it speak.
                log.info(
                    "speculative answer used: started %.0f ms before the turn ended",
                    (now - reply.started_at) * 1000,
                )
                self._utterance.clear()
                self._turns.reset()
                self._early_stt = None  # the reply has it
                reply.release(now)
                return
            speech_end = self._turns.speech_end if self._turns.speech_end is not None else now
            record = TurnRecord(speech_end=speech_end, turn_end=now)
            pcm = bytes(self._utterance)
            self._utterance.clear()
            self._turns.reset()
            early, self._early_stt = self._early_stt, None
            self._start_reply(
                output, caller_text=None, caller_pcm=pcm, record=record, early_transcript=early
            )

    def _on_speech_started(self, event: SpeechStarted) -> None:
        self._prompted = False  # the caller is there
        if self._early_stt is not None:
            self._early_stt.cancel()
            self._early_stt = None
        reply = self._reply
        if reply is not None and not reply.done and reply.held:
            # The caller went on after a pause: the answer begun on its words was never heard.
            # The turn is still open, its audio still gathered: only the answer goes.
            log.info("speculative answer dropped: the caller went on")
            reply.withdraw()
        elif reply is not None and not reply.done:
            if reply.audible or not reply.caller_pcm:
                reply.interrupt(event.onset)
            else:
                # The caller went on talking before the agent said anything: it was one turn
                # after all. Drop the premature answer and hear the whole turn again.
                reply.withdraw()
                self._utterance[:0] = reply.caller_pcm
                self._turns.speech_started(reply.record.speech_end)
        self._turns.speech_started(event.onset)
        self._utterance += event.audio

    def _start_reply(
        self,
        output: PacedOutput,
        *,
        caller_text: str | None,
        caller_pcm: bytes = b"",
        fixed_text: str | None = None,
        record: TurnRecord | None = None,
        early_transcript: asyncio.Task[Transcript] | None = None,
        speculative: bool = False,
    ) -> None:
        if self._reply is not None:
            # Defensive: a new caller turn starts with speech, which has already ended the
            # previous reply, so this is a no-op.
            self._reply.withdraw()
        reply = Reply(
            record=record or TurnRecord(),
            output=output,
            clock=self._clock,
            responder=self._responder,
            observer=self._observer,
            caller_pcm=caller_pcm,
            early_transcript=early_transcript,
            speculative=speculative,
        )
        self._reply = reply
        reply.start(functools.partial(self._speak_or_fail, reply, output, caller_text, fixed_text))

    async def _speak_or_fail(
        self,
        reply: Reply,
        output: PacedOutput,
        caller_text: str | None,
        fixed_text: str | None,
    ) -> None:
        """Speak the reply; a fatal error (see ``fatal``) ends the call, not only the reply:
        the reply keeps what was heard and :meth:`run` raises the error."""
        try:
            await self._speak_reply(reply, output, caller_text, fixed_text)
        except Exception as error:
            fatal = _fatal_part(error, self._fatal)
            if fatal is None:
                raise
            log.error("the call cannot go on: %s", fatal)
            # What is queued is whole clauses: the caller hears them out, then the call ends.
            # A clause whose audio never came (its synthesis failed) was not heard.
            reply.segments[:] = [s for s in reply.segments if s.total_frames]
            await output.wait_idle()
            reply.settle(cut_short=True)
            if self._failed is not None and not self._failed.done():
                self._failed.set_exception(fatal)

    async def _speak_reply(
        self,
        reply: Reply,
        output: PacedOutput,
        caller_text: str | None,
        fixed_text: str | None,
    ) -> None:
        record = reply.record
        if caller_text is None:
            early = reply.early_transcript
            transcript = await (
                early
                if early is not None
                else self._stt.transcribe(reply.caller_pcm, output.sample_rate)
            )
            record.transcript_at = self._clock.now()
            if not transcript.text.strip():
                log.info("caller turn had no words in it; not answering")
                reply.withdraw()
                return
            caller_text = transcript.text.strip()
        record.caller_text = caller_text
        if caller_text:
            # The words people say are personal data: only at DEBUG, never in the INFO log.
            log.debug("caller: %s", caller_text)
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        chunker = ClauseChunker()

        async def produce_text() -> None:
            try:
                if fixed_text is not None:
                    record.first_token_at = self._clock.now()
                    for clause in chunker.push(fixed_text + " "):
                        clauses.put_nowait(clause)
                else:
                    async for delta in reply.answer(caller_text):
                        if record.first_token_at is None:
                            record.first_token_at = self._clock.now()
                        for clause in chunker.push(delta):
                            clauses.put_nowait(clause)
                for clause in chunker.flush():
                    clauses.put_nowait(clause)
            finally:
                clauses.put_nowait(None)

        async def speak_clauses() -> None:
            resampler = StreamResampler(self._tts.sample_rate, output.sample_rate)
            # A speculative reply stays silent - no TTS, nothing queued - until its turn ends;
            # the LLM meanwhile fills the queue (docs/pipeline.md "Speculative reply").
            await reply.wait_released()
            while (clause := await clauses.get()) is not None:
                segment = SpokenSegment(text=clause)
                reply.segments.append(segment)
                async for pcm in self._tts.synthesize(clause):
                    if record.first_audio_at is None:
                        record.first_audio_at = self._clock.now()
                    reply.commit()  # the caller hears it now: no withdrawing it any more
                    output.enqueue(resampler.process(pcm), segment)
            if reply.segments:
                output.enqueue(resampler.process(b"", last=True), reply.segments[-1])

        async with asyncio.TaskGroup() as group:
            group.create_task(produce_text())
            group.create_task(speak_clauses())
        await output.wait_idle()
        reply.settle()
        if self._responder.end_call_requested:
            self._end_call_at = self._clock.now() + self.settings.hang_up_grace_s

    async def _finish(self, pacer_task: asyncio.Task[None] | None, *, caller_left: bool) -> None:
        reply = self._reply
        # Caller audio no reply was heard answering - an open turn, a pause in progress, an
        # answer not yet audible - is the caller's last words when the caller hung up.
        unheard = (
            reply is not None
            and not reply.done
            and not reply.held
            and bool(reply.caller_pcm)
            and not reply.audible
        )
        last: tuple[bytes, float, str | None] | None = None
        if caller_left and unheard:
            assert reply is not None
            known = reply.record.caller_text or _transcribed(reply.early_transcript)
            last = (reply.caller_pcm, reply.record.speech_end, known)
        elif caller_left and self._turns.turn_open and self._utterance:
            speech_end = self._turns.speech_end
            early = self._early_stt or (reply.early_transcript if reply else None)
            last = (
                bytes(self._utterance),
                speech_end if speech_end is not None else self._clock.now(),
                _transcribed(early),
            )
        if reply is not None and (reply.held or (last is not None and unheard)):
            # Nobody heard it: the caller hung up inside a pause, or before the answer began.
            reply.withdraw()
        elif reply is not None:
            # The call ended mid-answer: keep the exchange, cut at what was played.
            reply.settle(cut_short=True)
        tasks = [t for t in (pacer_task, reply.task if reply else None, self._early_stt) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if last is not None:
            await self._last_words(*last)

    async def _last_words(self, pcm: bytes, speech_end: float, known: str | None) -> None:
        """The caller hung up with ``pcm`` unanswered: transcribe it (unless ``known``) within
        ``last_words_s``, store it as the last caller turn and let the dialog act on it
        (docs/pipeline.md "Last words")."""
        text = known
        if text is None:
            try:
                async with asyncio.timeout(self.settings.last_words_s):
                    text = (await self._stt.transcribe(pcm, self._rate)).text
            except Exception:
                # The line is gone either way: the words are lost, the call still ends cleanly.
                log.warning("the caller's last words could not be transcribed", exc_info=True)
                return
        text = text.strip()
        if not text:
            return  # no words in it (Whisper found none): nothing to keep
        log.info("the caller hung up before being answered; keeping the last words")
        log.debug("caller (last words): %s", text)
        try:
            self._responder.last_words(text)
        except Exception:
            log.exception("the dialog failed on the caller's last words")
        now = self._clock.now()
        self._observer.turn_finished(
            TurnRecord(caller_text=text, speech_end=speech_end, turn_end=now, hung_up=True)
        )


def _transcribed(task: asyncio.Task[Transcript] | None) -> str | None:
    """The text of a finished transcription; None when there is none (yet, or it failed)."""
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result().text


def _fatal_part(error: Exception, fatal: tuple[type[Exception], ...]) -> Exception | None:
    """``error`` itself or the first error of its group (a reply's TaskGroup) that is one of
    ``fatal``; None when there is none."""
    if not fatal:
        return None
    if isinstance(error, fatal):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if isinstance(inner, Exception) and (found := _fatal_part(inner, fatal)) is not None:
                return found
    return None
