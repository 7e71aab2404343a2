"""Text to speech with Piper (or hibari), off the event loop, one engine per voice.

Piper yields one audio chunk per sentence (DESIGN.md, known traps); the pipeline therefore
hands it short clauses (see text_chunker) so the first audio comes sooner. :class:`VoiceLibrary`
holds every installed voice and loads each one once, the first time a call asks for it
(docs/models.md, "Voices").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


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


class HibariTextToSpeech:
    """A hibari voice (``hibari-tts``, distilled from Kokoro-82M): 24 kHz, one chunk per
    sentence like Piper; synthesis runs in a worker thread.

    Used for the female US English voice because no such Piper voice is shipped on PyPI
    (docs/models.md, "Voices"). The model file comes from the models folder, so the package's
    own voice download is never used.
    """

    def __init__(
        self, model_path: Path, *, threads: int = 1, executor: Executor | None = None
    ) -> None:
        from hibari import Hibari

        # voice="heart" picks the American English G2P; model= the file the manifest installed.
        self._voice = Hibari(voice="heart", model=str(model_path), threads=threads)
        self.sample_rate: int = int(self._voice.sample_rate)
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        # The G2P loads its lexicons on first use (~0.2 s measured): do it now, not mid-call.
        self._synthesize_sync("Hello.")

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(self._executor, self._synthesize_sync, text)
        for chunk in chunks:
            yield chunk

    def _synthesize_sync(self, text: str) -> list[bytes]:
        import numpy as np

        return [
            (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            for audio in self._voice.stream(text)
            if len(audio)
        ]


@dataclass(frozen=True)
class VoiceFiles:
    """What loads one voice: its name, the names it answers to, its engine and files."""

    name: str
    engine: str
    """``piper`` or ``hibari``."""
    model_path: Path
    config_path: Path | None = None
    aliases: tuple[str, ...] = ()


class VoiceLibrary:
    """The installed voices of this node, each loaded once, lazily, in a worker thread.

    ``tts_for(name)`` gives the engine of the voice ``name`` names (its name or an alias, any
    case); empty, unknown or unloadable names give the default voice, so a call is always
    answered (an agent stored before its voice was removed still speaks). All voices share one
    synthesis thread: on 2 cores the LLM generates while the TTS speaks, and a second
    synthesis thread would take the LLM's core (DESIGN.md, "Known traps").
    """

    def __init__(
        self,
        voices: Sequence[VoiceFiles],
        default: TextToSpeech,
        *,
        default_name: str = "",
        threads: int = 1,
        executor: Executor | None = None,
        loader: Callable[[VoiceFiles], TextToSpeech] | None = None,
    ) -> None:
        self._voices = {voice.name: voice for voice in voices}
        self._aliases = {
            alias.lower(): voice.name for voice in voices for alias in (voice.name, *voice.aliases)
        }
        self._default = default
        self.default_name = default_name
        self._threads = threads
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self._loader = loader or self._load
        self._loaded: dict[str, TextToSpeech] = {default_name: default} if default_name else {}
        self._loading: dict[str, asyncio.Lock] = {}
        self.loads = 0
        """How many voices were loaded since start (each at most once)."""

    @property
    def names(self) -> list[str]:
        """The installed voices' names."""
        return list(self._voices)

    def resolve(self, choice: str) -> str | None:
        """The name of the voice ``choice`` names, or None."""
        return self._aliases.get(choice.strip().lower())

    async def tts_for(self, choice: str) -> TextToSpeech:
        """The engine that speaks with the voice ``choice`` names (the default for ``""``)."""
        name = self.resolve(choice) if choice.strip() else None
        if name is None:
            if choice.strip():
                log.warning("voice %r is not installed: the default voice speaks", choice)
            return self._default
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        lock = self._loading.setdefault(name, asyncio.Lock())
        async with lock:  # two calls asking at once load it once
            loaded = self._loaded.get(name)
            if loaded is None:
                try:
                    # Loading an ONNX session takes 0.1-1 s: never on the event loop.
                    loaded = await asyncio.to_thread(self._loader, self._voices[name])
                except Exception:
                    log.exception("voice %s could not be loaded: the default voice speaks", name)
                    return self._default
                self._loaded[name] = loaded
                self.loads += 1
                log.info("voice %s loaded (%d Hz)", name, loaded.sample_rate)
        return loaded

    def _load(self, voice: VoiceFiles) -> TextToSpeech:
        if voice.engine == "hibari":
            return HibariTextToSpeech(
                voice.model_path, threads=self._threads, executor=self._executor
            )
        return PiperTextToSpeech(
            voice.model_path, voice.config_path, threads=self._threads, executor=self._executor
        )
