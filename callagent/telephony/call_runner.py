"""Joins one call - AudioSocket or direct SIP - to a voice pipeline and a dialog.

One runner per call (DESIGN.md); the speech and language engines are shared by all calls. With a
:class:`~callagent.telephony.routing.CallRouter` the runner answers with the agent of the
client whose number was called (or the call session that was placed), gives the dialog what
the customer record knows, and - with :class:`~callagent.telephony.call_journal.CallJournals` -
stores the call as it goes: status, every finished turn, latency, recording (docs/telephony.md
"Persistence as the call goes").
Without them it answers every call with the one configured agent and stores nothing (the
embedded mode and ``callagent call --simulate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callagent.call_logging import call_context
from callagent.dialog.actions import Action, ActionKind
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import LanguageModel
from callagent.inference.errors import EngineUnavailable
from callagent.store.services.call_state import CallAction, CallUpdate
from callagent.store.states import CallOutcome, CallStatus
from callagent.telephony.admission import BusyPrompt, CallAdmission, turn_away
from callagent.telephony.call_actions import ActionParams, CallActions
from callagent.telephony.call_journal import CallJournal, CallJournals, JournalObserver
from callagent.telephony.connection import AddressedCall, CallConnection, ClientTestCall
from callagent.telephony.metrics import CallMetrics, FrameGaps
from callagent.telephony.recording import CallRecorder
from callagent.telephony.routing import CallRouter, MachinePolicy, MessageResponder, Route
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import FRAME_MS, AudioFrame, DtmfFrame, InboundFrame
from callagent.voice_pipeline.pipeline import (
    BargeIn,
    CallLog,
    PipelineObserver,
    PipelineSettings,
    Responder,
    TurnRecord,
    VoicePipeline,
)
from callagent.voice_pipeline.stt import SpeechToText
from callagent.voice_pipeline.tts import TextToSpeech, VoiceLibrary

if TYPE_CHECKING:
    from callagent.inference.supervisor import EnginePool

log = logging.getLogger(__name__)

BUSY_CALLBACK_AFTER = dt.timedelta(minutes=15)
"""When the callback offered to a caller turned away at capacity is scheduled (the scheduler
then dials it within the agent's working hours, docs/telephony.md "Capacity")."""


@dataclass(frozen=True)
class VoiceEngines:
    """The models every call shares. ``tts`` is the default voice; ``voices``, when given,
    holds every installed voice, so a call speaks with its agent's (docs/models.md, "Voices")."""

    stt: SpeechToText
    tts: TextToSpeech
    llm: LanguageModel
    voices: VoiceLibrary | None = None
    pool: EnginePool | None = None
    """The worker processes the engines run in, when they do (docs/inference.md): their
    state for ``/health``, their restarts for metrics, stopped with the node."""

    async def tts_for(self, voice: str) -> TextToSpeech:
        """The engine that speaks with ``voice`` (an agent's choice; ``""``: the default)."""
        if self.voices is None or not voice.strip():
            return self.tts
        return await self.voices.tts_for(voice)


@dataclass
class CallReport:
    """What happened on one call: the turns with their latencies, and the barge-ins."""

    call_id: uuid.UUID
    log: CallLog = field(default_factory=CallLog)
    started_at: float = 0.0
    ended_at: float = 0.0
    recording: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    """What the agent did during the call (docs/dialog.md "In-call actions")."""

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``callagent call --json``."""
        return {
            "call_id": str(self.call_id),
            "greeting": " ".join(self.log.agent_lines),
            "turns": [
                {
                    "caller_text": turn.caller_text,
                    "agent_text": turn.agent_text,
                    "interrupted": turn.interrupted,
                    "latency_ms": turn.latency_ms(),
                }
                for turn in self.log.turns
            ],
            "barge_ins": len(self.log.barge_ins),
            "barge_in_stop_ms": [b.stop_ms for b in self.log.barge_ins],
            "duration_s": round(self.ended_at - self.started_at, 2),
            "recording": self.recording,
            "actions": list(self.actions),
        }


class _Tee:
    """Hands each pipeline event to several observers; one that raises is logged and does not
    disturb the others or the call."""

    def __init__(self, *observers: PipelineObserver) -> None:
        self._observers = observers

    def turn_finished(self, record: TurnRecord) -> None:
        for observer in self._observers:
            try:
                observer.turn_finished(record)
            except Exception:
                log.exception("call observer failed")

    def barge_in(self, event: BargeIn) -> None:
        for observer in self._observers:
            try:
                observer.barge_in(event)
            except Exception:
                log.exception("call observer failed")

    def agent_spoke(self, text: str) -> None:
        for observer in self._observers:
            try:
                observer.agent_spoke(text)
            except Exception:
                log.exception("call observer failed")


class CallRunner:
    """The call handler of the AudioSocket server and the SIP endpoint: one conversation per
    connection."""

    def __init__(
        self,
        engines: VoiceEngines,
        profile: AgentProfile,
        clock: Clock,
        settings: PipelineSettings | None = None,
        on_call_finished: Callable[[CallReport], None] | None = None,
        recordings: Path | None = None,
        *,
        router: CallRouter | None = None,
        journals: CallJournals | None = None,
        actions: ActionParams | None = None,
        admission: CallAdmission | None = None,
        busy: BusyPrompt | None = None,
        metrics: CallMetrics | None = None,
        apology: BusyPrompt | None = None,
    ) -> None:
        if admission is not None and busy is None:
            raise ValueError("a call runner with admission control needs its busy prompt")
        self._admission = admission
        self._busy = busy
        self._metrics = metrics
        # Rendered at start in this process: it plays when an engine is gone, so it must not
        # need one (docs/inference.md "When a worker dies").
        self._apology = apology
        self._recordings = recordings
        self._actions = actions or ActionParams()
        self._engines = engines
        self._profile = profile
        self._clock = clock
        self._settings = settings or PipelineSettings()
        self._on_call_finished = on_call_finished
        self._router = router
        self._journals = journals

    @property
    def clock(self) -> Clock:
        """The clock of the calls' voice pipelines: a transport stamps its frames with it."""
        return self._clock

    async def __call__(self, connection: CallConnection) -> None:
        # Every line logged during the call, also by the tasks it starts, carries the call's id
        # (callagent.call_logging), so the lines here need not repeat it.
        with call_context(connection.call_id):
            await self._answer(connection)

    async def _answer(self, connection: CallConnection) -> None:
        report = CallReport(call_id=connection.call_id, started_at=time.time())
        log.info("connected from %s", connection.remote)
        if self._router is not None:
            route = await self._router.route(connection)
        else:
            route = Route(kind="file_agent", reason="no router", profile=self._profile)
        stored = route.call_id is not None and route.client_id is not None
        if self._journals is not None and not stored:
            self._journals.not_stored(connection.call_id)  # what AMI said of it goes nowhere
        if route.kind == "refused":
            return  # not a call Asterisk announced: the connection closes without a word
        # After routing, so the refused call is stored like any other and an unannounced
        # connection never counts (docs/telephony.md "Capacity").
        via = "sip" if isinstance(connection, AddressedCall) else "audiosocket"
        if isinstance(connection, ClientTestCall):
            via = "browser"
        if self._admission is not None and not self._admission.admit(connection.call_id, via):
            await self._refuse(connection, route)
            return
        try:
            if self._journals is None or route.call_id is None or route.client_id is None:
                await self._converse(connection, route, report, None)
                return
            async with self._journals.hold(route.call_id, route.client_id) as journal:
                await self._converse(connection, route, report, journal)
        finally:
            if self._admission is not None:
                self._admission.release(connection.call_id)

    async def _refuse(self, connection: CallConnection, route: Route) -> None:
        """The node is at capacity: the busy prompt, then hang up; a stored call ends
        ``failed`` with outcome ``busy`` and, for a caller we know, a callback offered."""
        assert self._busy is not None
        if self._metrics is not None:
            self._metrics.call_ended("refused")
        if self._journals is None or route.call_id is None or route.client_id is None:
            await turn_away(connection, self._busy, self._clock)
            return
        async with self._journals.hold(route.call_id, route.client_id) as journal:
            assert self._admission is not None
            capacity = self._admission.capacity
            if route.direction == "inbound" and not isinstance(connection, ClientTestCall):
                # Before the update that ends the call: an action applies to a live call. A
                # do-not-call customer gets none (the store skips it).
                at = dt.datetime.now(dt.UTC) + BUSY_CALLBACK_AFTER
                journal.action(
                    CallAction(
                        record={
                            "type": "schedule_callback",
                            "source": "busy",
                            "at": at.isoformat(),
                        },
                        callback_at=at,
                        callback_reason="called while every line was busy",
                    )
                )
            # Written before the prompt plays: AMI's hang-up then finds the call over already.
            journal.update(
                CallUpdate(
                    status=CallStatus.FAILED,
                    outcome=CallOutcome.BUSY,
                    failure_reason=(
                        f"refused: at capacity ({capacity} calls live, routing.max_active_calls)"
                    ),
                )
            )
            await turn_away(connection, self._busy, self._clock)

    def _responder(self, route: Route, actions: CallActions) -> Responder:
        if route.kind == "message":
            return MessageResponder(route.message)
        return Conversation(
            route.profile or self._profile,
            self._engines.llm,
            context=route.context,
            greeting=route.greeting,
            actions=actions,
            purpose=route.purpose,
            # The greeting says the call is recorded when it is (docs/dialog.md "Compliance").
            recording=self._recordings is not None,
        )

    async def _converse(
        self,
        connection: CallConnection,
        route: Route,
        report: CallReport,
        journal: CallJournal | None,
    ) -> None:
        observers: list[PipelineObserver] = [report.log]
        writer: JournalObserver | None = None
        if journal is not None:
            # Make sure the session shows the call as live even if AMI's "answered" is late.
            journal.update(CallUpdate(status=CallStatus.IN_PROGRESS))
            writer = JournalObserver(journal, self._clock)
            observers.append(writer)
        if self._metrics is not None:
            observers.append(self._metrics)
        if isinstance(connection, ClientTestCall):
            observers.append(connection.observer)  # the page's live transcript
        observer: PipelineObserver = observers[0] if len(observers) == 1 else _Tee(*observers)
        gaps = FrameGaps(self._metrics) if self._metrics is not None else None
        # What the agent decides during the call is carried out here: stored through the
        # call's journal, a hand-over over AMI at the end (telephony/call_actions.py).
        actions = CallActions(
            connection.call_id,
            self._actions,
            journal=journal,
            client_id=route.client_id,
            via_ami=route.via_ami,
        )
        actions.start()
        # The agent's own voice, loaded once per node the first time a call needs it.
        tts = await self._engines.tts_for((route.profile or self._profile).voice)
        pipeline = VoicePipeline(
            self._engines.stt,
            tts,
            self._responder(route, actions),
            self._clock,
            self._settings,
            observer,
            fatal=(EngineUnavailable,),
        )

        async def hang_up() -> None:
            await actions.end_call(connection.hang_up, lambda: connection.closed)

        recorder = CallRecorder(self._recordings, connection.call_id) if self._recordings else None
        if recorder is not None:
            # From the start: the agent greets before the caller's first frame, which may
            # come late (DESIGN.md "Known traps"). The call session names its recording from
            # now on, so a call whose node dies keeps it, whichever node settles the call
            # (docs/telephony.md, "After a crash").
            recorder.start(connection.sample_rate)
            if journal is not None:
                journal.update(CallUpdate(recording_ref=recorder.reference))

        async def send(pcm: bytes) -> None:
            if recorder is not None:
                recorder.agent_audio(pcm)
            if gaps is not None:
                gaps.sent(self._clock.now())
            await connection.send_audio(pcm)

        # The line's own DTMF is stored only when AMI does not report it (direct SIP).
        keys = journal if journal is not None and not route.via_ami else None
        failure: str | None = None
        machine = False
        try:
            frames = self._frames(connection, recorder, keys)
            machine = await self._run(
                pipeline, frames, send, hang_up, connection, route, tts, observer
            )
        except EngineUnavailable as error:
            # A model is gone mid-call (its worker died, docs/inference.md): the caller hears
            # the apology and is handed to a person or hung up on; other calls are unaffected.
            failure = f"engine crashed: {error.engine} ({error.reason})"
            log.error("the %s engine is unavailable (%s); ending the call", error.engine, error)
            if journal is not None:
                # Before the hand-over: once Asterisk has taken the caller, AMI's report ends
                # the stored call, and a later "failed" could no longer say why.
                journal.update(CallUpdate(status=CallStatus.FAILED, failure_reason=failure))
            await self._engine_failed(connection, actions, send)
        except Exception as error:
            failure = f"call handler error: {type(error).__name__}"
            raise
        finally:
            await actions.close()
            report.actions = list(actions.taken)
            if recorder is not None:
                recorder.close()
                report.recording = recorder.reference
            report.ended_at = time.time()
            turns, barge_ins = len(report.log.turns), len(report.log.barge_ins)
            log.info("ended after %d turns, %d barge-ins", turns, barge_ins)
            if self._metrics is not None:
                self._metrics.call_ended("failed" if failure else "completed")
            if journal is not None and writer is not None:
                journal.update(
                    CallUpdate(
                        status=CallStatus.FAILED if failure else CallStatus.COMPLETED,
                        # A machine answered: nobody was reached, so the call is retried like
                        # any unreached one (docs/scheduler.md); the message is in the
                        # transcript.
                        outcome=CallOutcome.VOICEMAIL if machine and not failure else None,
                        failure_reason=failure,
                        recording_ref=report.recording,
                        latency=writer.snapshot(),
                    )
                )
            if self._on_call_finished is not None:
                self._on_call_finished(report)

    async def _engine_failed(
        self,
        connection: CallConnection,
        actions: CallActions,
        send: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Apologise, then hand the caller to a person when the node can (AMI and a transfer
        target, docs/dialog.md "In-call actions"), else hang up."""
        if connection.closed:
            return
        if self._apology is not None:
            pcm = await self._apology.audio(connection.sample_rate)
            await _play(pcm, send, connection, self._clock)
        if self._actions.transfer is not None and actions.can_transfer:
            actions.take(Action.make(ActionKind.TRANSFER, {}, "rule"))
        await actions.end_call(connection.hang_up, lambda: connection.closed)

    async def _run(
        self,
        pipeline: VoicePipeline,
        frames: AsyncIterator[InboundFrame],
        send: Callable[[bytes], Awaitable[None]],
        hang_up: Callable[[], Awaitable[None]],
        connection: CallConnection,
        route: Route,
        tts: TextToSpeech,
        observer: PipelineObserver,
    ) -> bool:
        """Converse; when AMD's verdict on a placed call is MACHINE - before the agent said a
        word or while it speaks - follow the agent's ``on_machine`` instead (docs/telephony.md
        "When a machine answers"). True: a machine answered and the call is over."""
        if route.machine is None or self._router is None:
            await pipeline.run(frames, send, hang_up, sample_rate=connection.sample_rate)
            return False
        verdict = asyncio.Event()
        stop_watching = self._router.watch_amd(connection.call_id, verdict.set)
        try:
            if not verdict.is_set():
                talk = asyncio.create_task(
                    pipeline.run(frames, send, hang_up, sample_rate=connection.sample_rate),
                    name="conversation",
                )
                heard = asyncio.create_task(verdict.wait(), name="amd-verdict")
                try:
                    await asyncio.wait({talk, heard}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (talk, heard):
                        task.cancel()  # the greeting stops mid-word, as on a barge-in
                    for task in (talk, heard):
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                if not verdict.is_set() or connection.closed:
                    return False  # the conversation ended first (its failure raised above)
            log.info("AMD: an answering machine; the agent's policy follows")
            await self._leave_machine(connection, route.machine, tts, observer)
            return True
        finally:
            stop_watching()

    async def _leave_machine(
        self,
        connection: CallConnection,
        policy: MachinePolicy,
        tts: TextToSpeech,
        observer: PipelineObserver,
    ) -> None:
        """Hang up on the machine, or speak the agent's message once (TTS only, no LLM) and
        then hang up. AMD decides after the machine's greeting and a silence, so the message
        starts after the beep in practice (docs/telephony.md)."""
        if policy.message is None:
            await connection.hang_up()
            return
        observer.agent_spoke(policy.message)
        # Rendered and paced like the busy prompt: a fixed text, played once, then hang up.
        await turn_away(connection, BusyPrompt(tts, policy.message), self._clock)

    async def _frames(
        self,
        connection: CallConnection,
        recorder: CallRecorder | None,
        keys: CallJournal | None,
    ) -> AsyncIterator[InboundFrame]:
        """The connection's frames, recording the caller's audio and storing keys on the way."""
        async for frame in connection.frames():
            if isinstance(frame, AudioFrame) and recorder is not None:
                recorder.caller_audio(frame.pcm, frame.sample_rate)
            elif isinstance(frame, DtmfFrame) and keys is not None:
                keys.update(CallUpdate(dtmf=frame.digit))
            yield frame


async def _play(
    pcm: bytes,
    send: Callable[[bytes], Awaitable[None]],
    connection: CallConnection,
    clock: Clock,
) -> None:
    """Send whole 20 ms frames of ``pcm`` paced on the clock (DESIGN.md "Contracts"); a caller
    who hangs up ends it early."""
    size = round(connection.sample_rate * FRAME_MS / 1000) * 2
    deadline = clock.now()
    for start in range(0, len(pcm), size):
        if connection.closed:
            return
        await send(pcm[start : start + size])
        # Resynchronise rather than burst after a stall (DESIGN.md "Known traps").
        deadline = max(deadline + FRAME_MS / 1000, clock.now() - 2 * FRAME_MS / 1000)
        await clock.sleep_until(deadline)
