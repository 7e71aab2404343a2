"""Engine clients: the pipeline's own engine protocols, answered by a worker process.

:class:`WorkerSpeechToText`, :class:`WorkerLanguageModel` and :class:`WorkerTextToSpeech`
implement ``SpeechToText``, ``LanguageModel`` and ``TextToSpeech``, so the pipeline and the
dialog do not know where the engine runs. Streams stay streams: each LLM token and each TTS
chunk is handed on the moment the worker sends it. When the worker dies, whatever is in flight
raises :class:`~callagent.inference.errors.EngineUnavailable` (docs/inference.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Final

from callagent.dialog.llm import ChatMessage
from callagent.inference.supervisor import EngineWorker
from callagent.voice_pipeline.stt import Transcript
from callagent.voice_pipeline.tts import TextToSpeech, VoiceFiles, VoiceLibrary

VOICE_LOAD_TIMEOUT_S: Final = 60.0
"""Longest the worker may take to load a voice a call asks for (0.1-1 s measured)."""


class WorkerSpeechToText:
    """``SpeechToText`` in the STT worker."""

    def __init__(self, worker: EngineWorker) -> None:
        self.worker = worker

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        data = await self.worker.call({"op": "transcribe", "pcm": pcm, "rate": sample_rate})
        return Transcript(
            text=str(data["text"]),
            no_speech_prob=float(data["no_speech_prob"]),
            avg_logprob=float(data["avg_logprob"]),
        )


class WorkerLanguageModel:
    """``LanguageModel`` in the LLM worker. A new worker (after a crash) evaluates the last
    warmed prompt again before it answers a call's turn, where it can: llama.cpp keeps one
    prefix in its cache, so the first reply then pays only for the caller's words
    (docs/inference.md "When a worker dies")."""

    def __init__(self, worker: EngineWorker) -> None:
        self.worker = worker
        self._last_warmed: dict[str, str] | None = None
        worker.on_ready.append(self._rewarm)

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        async with contextlib.aclosing(
            self.worker.stream({"op": "stream", "messages": list(messages)})
        ) as deltas:
            async for delta in deltas:
                yield str(delta)

    async def warm_up(self, system_prompt: str, *, context: str = "") -> None:
        self._last_warmed = _warm_up_message(system_prompt, context)
        await self.worker.call(self._last_warmed)

    async def _rewarm(self) -> None:
        if self._last_warmed is not None:
            with contextlib.suppress(Exception):  # a failed warm-up only costs speed
                await self.worker.call(self._last_warmed)


def _warm_up_message(system_prompt: str, context: str) -> dict[str, str]:
    message = {"op": "warm_up", "system_prompt": system_prompt}
    if context:
        message["context"] = context
    return message


class WorkerTextToSpeech:
    """``TextToSpeech`` of one voice in the TTS worker (``voice`` "": the default voice)."""

    def __init__(self, worker: EngineWorker, sample_rate: int, voice: str = "") -> None:
        self.worker = worker
        self.sample_rate: int = sample_rate
        self.voice = voice

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(
            self.worker.stream({"op": "synthesize", "text": text, "voice": self.voice})
        ) as chunks:
            async for chunk in chunks:
                yield bytes(chunk)


def worker_voice_library(
    worker: EngineWorker,
    voices: Sequence[VoiceFiles],
    default: WorkerTextToSpeech,
    default_name: str,
) -> VoiceLibrary:
    """A :class:`VoiceLibrary` whose voices live in the TTS worker: a voice is loaded there the
    first time a call asks for it (the library's loader runs in a thread, so it waits for the
    worker's answer on the event loop)."""
    loop = asyncio.get_running_loop()

    def load(voice: VoiceFiles) -> TextToSpeech:
        future = asyncio.run_coroutine_threadsafe(
            worker.call({"op": "voice", "voice": voice.name}), loop
        )
        data = future.result(VOICE_LOAD_TIMEOUT_S)
        return WorkerTextToSpeech(worker, int(data["sample_rate"]), voice.name)

    return VoiceLibrary(voices, default, default_name=default_name, loader=load)
