"""Tiny engines for worker processes, for the supervisor's edge cases (docs/inference.md).

They run in a real ``python -m callagent.inference.worker`` child, like the real engines, and
answer at once: the protocol and the supervision are what is under test, not a model.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from callagent.inference.worker import ServedEngine
from callagent.voice_pipeline.stt import Transcript


class _EchoModel:
    """An LLM that streams the last message back a word at a time, and then - when asked for
    "forever" - keeps streaming until cancelled."""

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        words = messages[-1]["content"].split()
        for word in words:
            yield word + " "
        while words == ["forever"]:
            await asyncio.sleep(0.01)
            yield "more "

    async def warm_up(self, system_prompt: str) -> None:
        return None


class _EchoSpeech:
    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        return Transcript(text=f"{len(pcm)} bytes at {sample_rate} Hz")


def echo_engine() -> ServedEngine:
    """An LLM and an STT that echo; op ``garble`` answers its request with a message the call
    process cannot read (a map with a non-string key, as a worker with a broken encoder might
    send)."""

    async def garble(message: dict[str, Any], emit: Any) -> None:
        emit({0: "not a message"})

    return ServedEngine(stt=_EchoSpeech(), llm=_EchoModel(), handlers={"garble": garble})


def failing_engine(marker: str) -> ServedEngine:
    """Fails to load every time; counts its attempts in the file ``marker``."""
    path = Path(marker)
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    raise RuntimeError(f"model file missing (attempt {count}, pid {os.getpid()})")
