"""Paced playback of the agent's audio onto the wire.

Asterisk plays whatever it receives at once, unbuffered (DESIGN.md, Contracts): audio written
faster than real time is mostly lost and leaves nothing to stop on barge-in. So one frame goes
out every 20 ms on the injected clock — agent speech when there is some, silence otherwise,
which also keeps the line alive (Asterisk hangs up after 2 s with nothing sent).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import FRAME_MS, frame_bytes

log = logging.getLogger(__name__)

# If the loop stalls for longer than this, resynchronise instead of bursting to catch up:
# Asterisk plays a burst at once, so catching up more than a frame or two garbles speech
# (DESIGN.md: "at most a frame or two ahead"). Measured here: an 80 ms catch-up burst.
_MAX_LAG_S = 0.04


@dataclass(slots=True)
class SpokenSegment:
    """A piece of the agent's reply: its text and how much of its audio reached the wire."""

    text: str
    total_frames: int = 0
    played_frames: int = 0
    first_sent_at: float | None = None

    @property
    def fraction_played(self) -> float:
        """Share of the segment's audio that was sent (1.0 when all of it was)."""
        return 1.0 if self.total_frames == 0 else self.played_frames / self.total_frames


def heard_text(segments: list[SpokenSegment]) -> str:
    """What the caller actually heard of a reply: whole segments, then the words of the
    partly played one in proportion to the audio sent (DESIGN.md practice 7)."""
    words: list[str] = []
    for segment in segments:
        segment_words = segment.text.split()
        if segment.played_frames >= segment.total_frames:
            words.extend(segment_words)
            continue
        words.extend(segment_words[: int(len(segment_words) * segment.fraction_played)])
        break
    return " ".join(words)


class PacedOutput:
    """Sends one frame per 20 ms tick; agent audio is queued, then dropped on interruption."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        sample_rate: int,
        clock: Clock,
    ) -> None:
        self._send = send
        self.sample_rate = sample_rate
        self._clock = clock
        self._frame_bytes = frame_bytes(sample_rate)
        self._silence = bytes(self._frame_bytes)
        self._queue: collections.deque[tuple[bytes, SpokenSegment]] = collections.deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self.frames_sent = 0
        self.speech_frames_sent = 0

    @property
    def speaking(self) -> bool:
        """True while agent audio is queued or being played."""
        return not self._idle.is_set()

    def enqueue(self, pcm: bytes, segment: SpokenSegment) -> None:
        """Queue agent audio (at the wire rate) belonging to ``segment``."""
        for start in range(0, len(pcm), self._frame_bytes):
            frame = pcm[start : start + self._frame_bytes]
            if len(frame) < self._frame_bytes:
                frame = frame + bytes(self._frame_bytes - len(frame))
            self._queue.append((frame, segment))
            segment.total_frames += 1
        if self._queue:
            self._idle.clear()

    def interrupt(self) -> int:
        """Drop all queued audio at once (barge-in); returns the number of frames dropped."""
        dropped = len(self._queue)
        self._queue.clear()
        self._idle.set()
        return dropped

    async def wait_idle(self) -> None:
        """Wait until everything queued has been sent."""
        await self._idle.wait()

    async def run(self) -> None:
        """The pacing loop; runs for the whole call, cancelled when the call ends."""
        deadline = self._clock.now()
        while True:
            if self._queue:
                frame, segment = self._queue.popleft()
                if segment.first_sent_at is None:
                    segment.first_sent_at = self._clock.now()
                segment.played_frames += 1
                self.speech_frames_sent += 1
            else:
                frame = self._silence
            await self._send(frame)
            self.frames_sent += 1
            if not self._queue:
                self._idle.set()
            deadline += FRAME_MS / 1000
            now = self._clock.now()
            if now - deadline > _MAX_LAG_S:
                log.info("playback fell %.0f ms behind; resynchronising", (now - deadline) * 1e3)
                deadline = now
            await self._clock.sleep_until(deadline)
