"""Frames that flow through the voice pipeline.

Frames are small frozen dataclasses with a timestamp (DESIGN.md practice 3). Audio frames are
data; the others are system frames that the pipeline acts on at once.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_SAMPLE = 2  # signed 16-bit little-endian mono, the AudioSocket wire format
FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A piece of caller or agent audio: s16le mono PCM."""

    pcm: bytes
    sample_rate: int
    timestamp: float

    @property
    def duration(self) -> float:
        """Length of the frame in seconds."""
        return len(self.pcm) / (BYTES_PER_SAMPLE * self.sample_rate)


DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""The sixteen DTMF keys a :class:`DtmfFrame` can carry (what Asterisk and RFC 4733 report)."""


@dataclass(frozen=True, slots=True)
class DtmfFrame:
    """A keypad digit the caller pressed, one of :data:`DTMF_DIGITS`."""

    digit: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class HangUpFrame:
    """The caller's side of the call has ended."""

    timestamp: float


InboundFrame = AudioFrame | DtmfFrame | HangUpFrame


def frame_bytes(sample_rate: int, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one frame of ``frame_ms`` at ``sample_rate`` (320 for 20 ms at 8 kHz)."""
    return sample_rate * frame_ms // 1000 * BYTES_PER_SAMPLE
