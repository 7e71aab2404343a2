"""Scripted fakes of the models and a fake call on a fast, deterministic clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from callagent.dialog.llm import ChatMessage
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, HangUpFrame, InboundFrame
from callagent.voice_pipeline.stt import Transcript

from helpers.audio import frames, rms, silence


@dataclass
class FakeSpeechToText:
    """Returns scripted transcripts in order, one per caller turn, after ``delay_s`` of fake
    time. Audio that extends the previous request's audio is the same turn (the pipeline
    transcribes a turn early and again when the caller goes on)."""

    clock: FakeClock
    transcripts: list[str]
    delay_s: float = 0.1
    heard: list[bytes] = field(default_factory=list)
    _last_pcm: bytes = b""
    _last_text: str = ""

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        self.heard.append(pcm)
        if self._last_pcm and pcm.startswith(self._last_pcm):
            text = self._last_text  # more audio of the same turn: the same words
        else:
            text = self.transcripts.pop(0) if self.transcripts else ""
        self._last_pcm, self._last_text = pcm, text
        await self.clock.sleep_until(self.clock.now() + self.delay_s)
        return Transcript(text)


@dataclass
class FakeTextToSpeech:
    """Speaks ``seconds_per_word`` of tone per word at 16 kHz, after ``delay_s`` of fake time."""

    clock: FakeClock
    sample_rate: int = 16000
    seconds_per_word: float = 0.2
    delay_s: float = 0.05
    spoken: list[str] = field(default_factory=list)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        await self.clock.sleep_until(self.clock.now() + self.delay_s)
        self.spoken.append(text)
        n = int(len(text.split()) * self.seconds_per_word * self.sample_rate)
        t = np.arange(n) / self.sample_rate
        yield (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()


@dataclass
class FakeLanguageModel:
    """Streams scripted replies word by word, ``token_delay_s`` of fake time apart."""

    clock: FakeClock
    replies: list[str]
    first_token_delay_s: float = 0.15
    token_delay_s: float = 0.02
    requests: list[list[ChatMessage]] = field(default_factory=list)
    stopped_early: int = 0
    warmed: list[tuple[str, str]] = field(default_factory=list)

    async def warm_up(self, system_prompt: str, *, context: str = "") -> None:
        self.warmed.append((system_prompt, context))

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        self.requests.append(list(messages))
        reply = self.replies.pop(0) if self.replies else "Okay."
        await self.clock.sleep_until(self.clock.now() + self.first_token_delay_s)
        words = reply.split(" ")
        finished = False
        try:
            for i, word in enumerate(words):
                yield word if i == 0 else " " + word
                await self.clock.sleep_until(self.clock.now() + self.token_delay_s)
            finished = True
        finally:
            if not finished:
                self.stopped_early += 1


class FakeCall:
    """The caller's side of a call: feeds one 20 ms frame per fake-clock tick, records what the
    agent sends with the time it was sent."""

    def __init__(self, clock: FakeClock, rate: int = 8000) -> None:
        self.clock = clock
        self.rate = rate
        self.sent: list[tuple[float, bytes]] = []
        self.hung_up = False
        self._inbound: asyncio.Queue[InboundFrame | None] = asyncio.Queue()

    async def send(self, pcm: bytes) -> None:
        self.sent.append((self.clock.now(), pcm))

    async def hang_up(self) -> None:
        self.hung_up = True

    async def inbound(self) -> AsyncIterator[InboundFrame]:
        while (frame := await self._inbound.get()) is not None:
            yield frame

    async def play(self, pcm: bytes) -> None:
        """The caller's audio, one frame per 20 ms of fake time."""
        for frame in frames(pcm, self.rate):
            self._inbound.put_nowait(AudioFrame(frame, self.rate, self.clock.now()))
            await self.clock.advance(0.02)

    async def wait(self, seconds: float) -> None:
        """The caller stays silent (Asterisk still sends frames)."""
        await self.play(silence(seconds, self.rate))

    async def no_media(self, seconds: float) -> None:
        """Time passes and no frame arrives: a real Asterisk sends none until the caller's
        RTP does (DESIGN.md "Known traps")."""
        for _ in range(round(seconds / 0.02)):
            await self.clock.advance(0.02)

    async def wait_until(self, condition: Callable[[], bool], max_seconds: float = 30.0) -> None:
        """Stay silent until ``condition`` holds; fails the test after ``max_seconds``."""
        waited = 0.0
        while not condition():
            assert waited < max_seconds, "timed out waiting on the fake timeline"
            await self.wait(0.02)
            waited += 0.02

    def press(self, digit: str) -> None:
        """A DTMF digit."""
        self._inbound.put_nowait(DtmfFrame(digit, self.clock.now()))

    def end(self) -> None:
        """The caller hangs up."""
        self._inbound.put_nowait(HangUpFrame(self.clock.now()))

    def agent_audio_times(self, threshold: float = 0.01) -> list[float]:
        """Send times of the frames that carried agent speech."""
        return [t for t, pcm in self.sent if rms(pcm) > threshold]

    def agent_is_silent_since(self, seconds: float) -> bool:
        """True when no agent speech went out in the last ``seconds``."""
        times = self.agent_audio_times()
        return bool(times) and self.clock.now() - times[-1] >= seconds
