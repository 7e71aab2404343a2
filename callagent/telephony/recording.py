"""Call recordings: both sides of each call in one 2-channel wav file (docs/telephony.md).

The caller is the left channel, the agent the right, on the call's 20 ms timeline: Asterisk
sends a caller frame every 20 ms and the paced output sends an agent frame every 20 ms, so
frame *n* of each side is the same instant. Files older than the retention period are deleted
by :func:`delete_expired_recordings`.
"""

from __future__ import annotations

import logging
import time
import uuid
import wave
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class CallRecorder:
    """Writes one call's audio as it happens (bounded memory: at most a few frames held)."""

    def __init__(self, folder: Path, call_id: uuid.UUID) -> None:
        self.folder = folder
        self.path = folder / f"{call_id}.wav"
        self._wav: wave.Wave_write | None = None
        self._sample_rate: int | None = None
        self._caller = bytearray()
        self._agent = bytearray()

    @property
    def reference(self) -> str:
        """How the call session refers to the recording: the file name in the folder."""
        return self.path.name

    def caller_audio(self, pcm: bytes, sample_rate: int) -> None:
        """A caller frame (opens the file on the first one: its rate is the call's rate)."""
        if self._wav is None:
            self._open(sample_rate)
        elif sample_rate != self._sample_rate:
            return  # a rate change mid-call cannot go in one file; keep the first rate
        self._caller += pcm
        self._write_ready()

    def agent_audio(self, pcm: bytes) -> None:
        """An agent frame, as sent on the wire."""
        if self._wav is None:
            return  # the agent speaks only once the caller's rate is known
        self._agent += pcm
        self._write_ready()

    def close(self) -> None:
        """Write what is left (the shorter side padded with silence) and close the file."""
        if self._wav is None:
            return
        length = max(len(self._caller), len(self._agent))
        self._caller += bytes(length - len(self._caller))
        self._agent += bytes(length - len(self._agent))
        self._write_ready()
        self._wav.close()
        self._wav = None

    def _open(self, sample_rate: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sample_rate = sample_rate
        # Open for the whole call, closed in close(): a context manager cannot span the call.
        self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)

    def _write_ready(self) -> None:
        assert self._wav is not None
        ready = min(len(self._caller), len(self._agent)) // 2 * 2
        if ready == 0:
            return
        left = np.frombuffer(bytes(self._caller[:ready]), dtype="<i2")
        right = np.frombuffer(bytes(self._agent[:ready]), dtype="<i2")
        self._wav.writeframesraw(np.column_stack((left, right)).tobytes())
        del self._caller[:ready]
        del self._agent[:ready]


def delete_expired_recordings(folder: Path, retention_days: float, now: float | None = None) -> int:
    """Delete recordings older than ``retention_days``; returns how many were deleted."""
    if retention_days <= 0 or not folder.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    deleted = 0
    for path in folder.glob("*.wav"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except OSError as error:  # a file removed meanwhile, or not ours to delete
            log.warning("could not delete old recording %s: %s", path, error)
    if deleted:
        log.info("deleted %d recordings older than %s days", deleted, retention_days)
    return deleted
