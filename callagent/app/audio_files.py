"""Audio files of the command line and the benchmarks: caller recordings in, agent audio out."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soundfile

from callagent.app.errors import UsageError
from callagent.voice_pipeline.audio import float_to_pcm, resample


def read_caller_audio(path: Path, sample_rate: int) -> bytes:
    """Any audio file libsndfile reads (wav, µ-law wav, flac, …) as mono s16le PCM at
    ``sample_rate``, resampled with soxr."""
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        raise UsageError(f"cannot read caller audio {path}: {error}") from error
    if samples.size == 0:
        raise UsageError(f"caller audio {path} is empty")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return resample(float_to_pcm(np.asarray(mono)), int(rate), sample_rate)


def write_wav(path: Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    """Write s16le PCM as a wav file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
