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
        threads: int = 1,
        executor: Executor | None = None,
    ) -> None:
        import json

        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        config_path = config_path or model_path.with_name(model_path.name + ".json")
        options = onnxruntime.SessionOptions()
        # On 2 cores the LLM generates while Piper speaks the previous clause: a spinning
        # onnxruntime thread pool would steal the LLM's core, so use few threads that sleep.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._voice = PiperVoice(
            session=onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            ),
            config=PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8"))),
        )
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
