"""Joins one AudioSocket call to a voice pipeline and a dialog.

One runner per call (DESIGN.md); the speech and language engines are shared by all calls.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import LanguageModel
from callagent.telephony.asterisk.audiosocket import Audio, Dtmf, ErrorMessage
from callagent.telephony.asterisk.server import AudioSocketConnection
from callagent.telephony.recording import CallRecorder
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, HangUpFrame, InboundFrame
from callagent.voice_pipeline.pipeline import CallLog, PipelineSettings, VoicePipeline
from callagent.voice_pipeline.stt import SpeechToText
from callagent.voice_pipeline.tts import TextToSpeech

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceEngines:
    """The models every call shares."""

    stt: SpeechToText
    tts: TextToSpeech
    llm: LanguageModel


@dataclass
class CallReport:
    """What happened on one call: the turns with their latencies, and the barge-ins."""

    call_id: uuid.UUID
    log: CallLog = field(default_factory=CallLog)
    started_at: float = 0.0
    ended_at: float = 0.0
    recording: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``callagent call --json`` (issue #2, item 7)."""
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
        }


class CallRunner:
    """The AudioSocket server's call handler: one conversation per connection."""

    def __init__(
        self,
        engines: VoiceEngines,
        profile: AgentProfile,
        clock: Clock,
        settings: PipelineSettings | None = None,
        on_call_finished: Callable[[CallReport], None] | None = None,
        recordings: Path | None = None,
    ) -> None:
        self._recordings = recordings
        self._engines = engines
        self._profile = profile
        self._clock = clock
        self._settings = settings or PipelineSettings()
        self._on_call_finished = on_call_finished

    async def __call__(self, connection: AudioSocketConnection) -> None:
        report = CallReport(call_id=connection.call_id, started_at=time.time())
        log.info("call %s from %s: connected", connection.call_id, connection.remote)
        conversation = Conversation(self._profile, self._engines.llm)
        pipeline = VoicePipeline(
            self._engines.stt,
            self._engines.tts,
            conversation,
            self._clock,
            self._settings,
            report.log,
        )
        recorder = CallRecorder(self._recordings, connection.call_id) if self._recordings else None

        async def send(pcm: bytes) -> None:
            if recorder is not None:
                recorder.agent_audio(pcm)
            await connection.send_audio(pcm)

        try:
            await pipeline.run(self._frames(connection, recorder), send, connection.hang_up)
        finally:
            if recorder is not None:
                recorder.close()
                report.recording = recorder.reference
            report.ended_at = time.time()
            log.info(
                "call %s: ended after %d turns, %d barge-ins",
                connection.call_id,
                len(report.log.turns),
                len(report.log.barge_ins),
            )
            if self._on_call_finished is not None:
                self._on_call_finished(report)

    async def _frames(
        self, connection: AudioSocketConnection, recorder: CallRecorder | None
    ) -> AsyncIterator[InboundFrame]:
        async for event in connection.events():
            now = self._clock.now()
            if isinstance(event, Audio):
                if recorder is not None:
                    recorder.caller_audio(event.pcm, event.sample_rate)
                yield AudioFrame(event.pcm, event.sample_rate, now)
            elif isinstance(event, Dtmf):
                yield DtmfFrame(event.digit, now)
            elif isinstance(event, ErrorMessage):
                log.warning("call %s: Asterisk reported error %r", connection.call_id, event.code)
        yield HangUpFrame(self._clock.now())
