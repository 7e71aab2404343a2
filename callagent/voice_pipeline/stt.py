"""Speech to text with faster-whisper, off the event loop.

faster-whisper only decodes while its segment generator is iterated, so the whole iteration
runs inside the worker (DESIGN.md practice 5). Whisper invents words on silence and noise:
segments it itself rates as probably-not-speech are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from callagent.voice_pipeline.audio import pcm_to_float, resample

log = logging.getLogger(__name__)

WHISPER_RATE = 16000


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the caller said, with Whisper's own confidence figures."""

    text: str
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0


class SpeechToText(Protocol):
    """Anything that turns caller audio into text."""

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        """Transcribe one utterance of s16le mono PCM."""
        ...


@dataclass(frozen=True, slots=True)
class WhisperSettings:
    """faster-whisper options; beam 1 is as accurate as beam 5 on 8 kHz speech (DESIGN.md)."""

    beam_size: int = 1
    compute_type: str = "int8"
    cpu_threads: int = 2
    language: str = "en"
    no_speech_threshold: float = 0.6
    min_avg_logprob: float = -1.2


class WhisperSpeechToText:
    """faster-whisper on a CTranslate2 model folder, one worker thread."""

    def __init__(
        self,
        model_dir: Path,
        settings: WhisperSettings | None = None,
        executor: Executor | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings or WhisperSettings()
        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=self.settings.compute_type,
            cpu_threads=self.settings.cpu_threads,
            # Never reach for a model hub: the folder is all there is (air-gapped installs). The
            # composition root also sets HF_HUB_OFFLINE for the libraries underneath (DESIGN.md
            # practice 12: components leave the environment alone).
            local_files_only=True,
        )
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        audio = pcm_to_float(resample(pcm, sample_rate, WHISPER_RATE))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transcribe_sync, audio)

    def _transcribe_sync(self, audio: object) -> Transcript:
        s = self.settings
        segments, _info = self._model.transcribe(
            audio,  # type: ignore[arg-type]
            language=s.language,
            beam_size=s.beam_size,
            vad_filter=False,  # our own VAD already cut the utterance
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        texts: list[str] = []
        worst_no_speech = 0.0
        logprobs: list[float] = []
        for segment in segments:  # decoding happens here, inside the worker
            if (
                segment.no_speech_prob > s.no_speech_threshold
                and segment.avg_logprob < s.min_avg_logprob
            ):
                # What the caller said is personal data: its words only at DEBUG.
                log.info(
                    "dropped a segment Whisper rates as non-speech (no_speech_prob %.2f, "
                    "avg_logprob %.2f)",
                    segment.no_speech_prob,
                    segment.avg_logprob,
                )
                log.debug("dropped segment: %r", segment.text)
                continue
            texts.append(segment.text.strip())
            worst_no_speech = max(worst_no_speech, segment.no_speech_prob)
            logprobs.append(segment.avg_logprob)
        return Transcript(
            text=" ".join(t for t in texts if t),
            no_speech_prob=worst_no_speech,
            avg_logprob=sum(logprobs) / len(logprobs) if logprobs else 0.0,
        )
