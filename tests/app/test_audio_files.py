"""Caller recordings in, agent audio out."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from callagent.app.audio_files import read_caller_audio, write_wav
from callagent.app.errors import UsageError


def tone(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_a_stereo_recording_becomes_mono_pcm_at_the_wire_rate(tmp_path: Path) -> None:
    path = tmp_path / "caller.flac"
    samples = tone(16000)
    soundfile.write(path, np.stack([samples, samples], axis=1), 16000)
    pcm = read_caller_audio(path, 8000)
    assert len(pcm) == 2 * 4000  # 0.5 s of s16le at 8 kHz
    level = np.abs(np.frombuffer(pcm, dtype="<i2")).max()
    assert 0.25 * 32767 < level < 0.35 * 32767


def test_written_wav_reads_back(tmp_path: Path) -> None:
    pcm = (tone(8000) * 32767).astype("<i2").tobytes()
    path = tmp_path / "agent.wav"
    write_wav(path, pcm, 8000)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
    assert read_caller_audio(path, 8000) == pcm


def test_unreadable_or_empty_recordings_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read caller audio"):
        read_caller_audio(tmp_path / "missing.wav", 8000)
    empty = tmp_path / "empty.wav"
    write_wav(empty, b"", 8000)
    with pytest.raises(UsageError, match="is empty"):
        read_caller_audio(empty, 8000)
