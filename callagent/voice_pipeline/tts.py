"""Text to speech with Piper, off the event loop.

Piper yields one audio chunk per sentence (DESIGN.md, known traps); the pipeline therefore
hands it short clauses (see text_chunker) so the first audio comes sooner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol


class TextToSpeech(Protocol):
    """Anything that speaks text as s16le mono PCM at :attr:`sample_rate`."""

    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Yield the audio of ``text`` in one or more chunks."""
        ...


class PiperTextToSpeech:
    """A Piper ONNX voice; synthesis runs in a worker thread."""

    def __init__(
        self,
        model_path: Path,
        config_path: Path | None = None,
        *,
        length_scale: float | None = None,
        executor: Executor | None = None,
    ) -> None:
        from piper import PiperVoice
        from piper.config import SynthesisConfig

        self._voice = PiperVoice.load(model_path, config_path=config_path)
        self._config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(self._executor, self._synthesize_sync, text)
        for chunk in chunks:
            yield chunk

    def _synthesize_sync(self, text: str) -> list[bytes]:
        return [
            chunk.audio_int16_bytes
            for chunk in self._voice.synthesize(text, syn_config=self._config)
        ]
