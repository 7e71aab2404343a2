"""Call recordings: both sides of each call in one 2-channel wav file (docs/telephony.md).

The caller is the left channel, the agent the right, on the call's 20 ms timeline: Asterisk
sends a caller frame every 20 ms and the paced output sends an agent frame every 20 ms, so
frame *n* of each side is the same instant. The recording starts when the call connects: the
agent speaks from then on, while Asterisk sends caller frames only once the caller's RTP
arrives (DESIGN.md "Known traps"); caller audio that falls behind the agent's by more than
``MAX_CALLER_LAG_S`` was never sent and is recorded as silence. Files older than the retention
period are deleted by :func:`delete_expired_recordings`.

A wav header states the data's size, and Python's ``wave`` writes the true one only on close: a
process killed mid-call would leave a file whose header says it holds its first frame. So the
recorder rewrites the sizes every second of audio (``HEADER_SYNC_S``), and
:func:`repair_recording` sets them from the file's size for a recording a crash cut off
(docs/telephony.md, "After a crash").
"""

from __future__ import annotations

import logging
import os
import struct
import time
import uuid
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

log = logging.getLogger(__name__)

HEADER_SYNC_S = 1.0
"""Seconds of audio between two rewrites of the header's sizes: what a kill can cost at most
before :func:`repair_recording` runs."""
MAX_CALLER_LAG_S = 0.2
"""How far the caller's side may trail the agent's before the gap counts as silence: more
than Asterisk's frames were seen to bunch up, far less than a caller without RTP leaves."""
HEADER_BYTES = 44
"""The header ``wave`` writes for PCM: RIFF size at byte 4, ``fmt `` chunk, data size at 40."""
_RIFF_SIZE_AT, _DATA_SIZE_AT = 4, 40
RECORDING_MODE = 0o600
"""Recordings are readable and writable by the service's user only."""
RECORDING_FOLDER_MODE = 0o700
"""The mode of a recordings folder the recorder creates (an existing one is left as it is)."""


def _write_sizes(fd: int, data_bytes: int) -> None:
    """Write a PCM wav's RIFF and data sizes in place (``pwrite``: the file position stays)."""
    os.pwrite(fd, struct.pack("<I", 36 + data_bytes), _RIFF_SIZE_AT)
    os.pwrite(fd, struct.pack("<I", data_bytes), _DATA_SIZE_AT)


class CallRecorder:
    """Writes one call's audio as it happens (bounded memory: at most a few frames held)."""

    def __init__(
        self, folder: Path, call_id: uuid.UUID, *, header_sync_s: float = HEADER_SYNC_S
    ) -> None:
        self.folder = folder
        self.path = folder / f"{call_id}.wav"
        self._header_sync_s = header_sync_s
        self._file: BinaryIO | None = None
        self._wav: wave.Wave_write | None = None
        self._sample_rate: int | None = None
        self._caller = bytearray()
        self._agent = bytearray()
        self._data_bytes = 0
        self._synced_bytes = 0

    @property
    def reference(self) -> str:
        """How the call session refers to the recording: the file name in the folder."""
        return self.path.name

    @property
    def started(self) -> bool:
        """Whether the file exists (:meth:`start`, or the caller's first frame, opened it)."""
        return self._sample_rate is not None

    def start(self, sample_rate: int) -> None:
        """Open the file at the call's rate, when the call connects."""
        if self._wav is None:
            self._open(sample_rate)

    def caller_audio(self, pcm: bytes, sample_rate: int) -> None:
        """A caller frame (opens the file if :meth:`start` did not: its rate is the call's)."""
        if self._wav is None:
            self._open(sample_rate)
        elif sample_rate != self._sample_rate:
            return  # a rate change mid-call cannot go in one file; keep the first rate
        self._caller += pcm
        self._write_ready()

    def agent_audio(self, pcm: bytes) -> None:
        """An agent frame, as sent on the wire."""
        if self._wav is None or self._sample_rate is None:
            return  # not started
        self._agent += pcm
        lag = len(self._agent) - len(self._caller)
        if lag > MAX_CALLER_LAG_S * self._sample_rate * 2:
            # The caller sent nothing meanwhile (no RTP yet, or a gap): that was silence.
            self._caller += bytes(lag)
        self._write_ready()

    def close(self) -> None:
        """Write what is left (the shorter side padded with silence) and close the file."""
        if self._wav is None:
            return
        length = max(len(self._caller), len(self._agent))
        self._caller += bytes(length - len(self._caller))
        self._agent += bytes(length - len(self._agent))
        self._write_ready()
        self._wav.close()  # writes the final sizes
        self._wav = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self, sample_rate: int) -> None:
        # A call is personal data: the folder and each file are the service user's alone,
        # whatever the umask (docs/telephony.md "Recordings").
        self.folder.mkdir(mode=RECORDING_FOLDER_MODE, parents=True, exist_ok=True)
        self._sample_rate = sample_rate
        # Open for the whole call, closed in close(): a context manager cannot span the call.
        # The recorder owns the file (wave does not close what it did not open) so that it can
        # rewrite the header's sizes as the call goes.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, RECORDING_MODE)
        os.fchmod(fd, RECORDING_MODE)  # O_CREAT's mode is ignored for a file that exists
        self._file = os.fdopen(fd, "wb")
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115
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
        self._data_bytes += 2 * ready
        assert self._sample_rate is not None
        if self._data_bytes - self._synced_bytes >= self._header_sync_s * self._sample_rate * 4:
            self._sync_header()

    def _sync_header(self) -> None:
        """Make the file valid as it stands: if the process dies now, the header is right."""
        assert self._file is not None
        self._file.flush()  # the data first, then sizes that count only data on disk
        _write_sizes(self._file.fileno(), self._data_bytes)
        self._synced_bytes = self._data_bytes


def repair_recording(path: Path) -> float | None:
    """Make a recording a crash cut off readable to its last whole frame: the header's sizes
    from the file's size. Its length in seconds; None for a file that is not a PCM wav as
    :class:`CallRecorder` writes them (e.g. killed before the header was written)."""
    with open(path, "r+b") as file:
        header = file.read(HEADER_BYTES)
        if (
            len(header) < HEADER_BYTES
            or header[0:4] != b"RIFF"
            or header[8:16] != b"WAVEfmt "
            or header[36:40] != b"data"
        ):
            return None
        (rate,) = struct.unpack_from("<I", header, 24)
        (block,) = struct.unpack_from("<H", header, 32)
        if rate == 0 or block == 0:
            return None
        size = os.fstat(file.fileno()).st_size
        data_bytes = (size - HEADER_BYTES) // block * block
        if size != HEADER_BYTES + data_bytes:
            file.truncate(HEADER_BYTES + data_bytes)  # half a frame is not audio
        _write_sizes(file.fileno(), data_bytes)
    return data_bytes / block / rate


def delete_recordings(folder: Path, references: Iterable[str]) -> int:
    """Delete the recordings ``references`` name (calls' ``recording_ref``: file names in
    ``folder``); returns how many were deleted. A reference that is not a plain ``.wav`` file
    name is never followed out of the folder; a file already gone is no error."""
    deleted = 0
    for reference in references:
        if Path(reference).name != reference or not reference.endswith(".wav"):
            log.warning("not a recording file name, left alone: %r", reference)
            continue
        try:
            (folder / reference).unlink()
            deleted += 1
        except FileNotFoundError:
            pass  # retention (or an operator) deleted it already
        except OSError as error:
            log.warning("could not delete recording %s: %s", folder / reference, error)
    return deleted


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
