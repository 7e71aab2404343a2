"""PCM helpers: conversion, levels and resampling.

Resampling goes through soxr, a real band-limited resampler (DESIGN.md: never drop samples).
"""

from __future__ import annotations

import math

import numpy as np
import soxr

from callagent.voice_pipeline.frames import BYTES_PER_SAMPLE


def pcm_to_float(pcm: bytes) -> np.ndarray:
    """s16le bytes → float32 samples in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: np.ndarray) -> bytes:
    """float samples → s16le bytes, clipped rather than wrapped."""
    clipped = np.clip(samples, -1.0, 32767 / 32768)
    return (clipped * 32768.0).astype("<i2").tobytes()


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole s16le buffer with soxr (high quality)."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype("<i2").tobytes()


class StreamResampler:
    """Resamples a stream of s16le chunks without clicks at the chunk boundaries."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")
        )

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        """Feed one chunk; ``last`` flushes what the filter still holds."""
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return self._stream.resample_chunk(samples, last=last).astype("<i2").tobytes()


def rms_dbfs(pcm: bytes) -> float:
    """Level of a frame in dB relative to full scale (-inf for digital silence)."""
    if len(pcm) < BYTES_PER_SAMPLE:
        return -math.inf
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    power = float(np.mean(samples * samples))
    if power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(power / (32768.0 * 32768.0))


def silence(n_bytes: int) -> bytes:
    """Digital silence of ``n_bytes`` bytes."""
    return bytes(n_bytes)
