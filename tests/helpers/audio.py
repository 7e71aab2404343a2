"""Synthetic test audio.

A pitched, formant-shaped "vowel" passes webrtcvad and our periodicity check like a human
voice does; white-noise bursts stand in for coughs and line noise, which must not.
"""

from __future__ import annotations

import numpy as np


def voice(seconds: float, rate: int = 8000, f0: float = 120.0, level: float = 0.3) -> bytes:
    """A voiced, syllable-modulated signal that a speech detector takes for speech."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = np.zeros_like(t)
    for k in range(1, 40):
        freq = k * f0
        if freq > rate / 2 - 200:
            break
        weight = 0.05 + sum(
            np.exp(-(((freq - formant) / width) ** 2))
            for formant, width in ((700, 130), (1200, 150), (2600, 250))
        )
        signal += weight * np.sin(k * phase) / np.sqrt(k)
    signal *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    signal = signal / np.abs(signal).max() * level
    return (signal * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = 8000) -> bytes:
    """Digital silence."""
    return bytes(int(seconds * rate) * 2)


def noise(seconds: float, rate: int = 8000, level: float = 0.05, seed: int = 1) -> bytes:
    """Steady white noise, like a hissing line."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(0.0, level, int(seconds * rate))
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def cough(seconds: float = 0.35, rate: int = 8000, level: float = 0.5, seed: int = 2) -> bytes:
    """A loud, decaying noise burst with no pitch — the shape of a cough."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    samples = rng.normal(0.0, 1.0, len(t)) * np.exp(-t / 0.12) * level
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def frames(pcm: bytes, rate: int = 8000, frame_ms: int = 20) -> list[bytes]:
    """Cut PCM into wire frames (the last one may be short, as Asterisk's can be)."""
    size = rate * frame_ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def rms(pcm: bytes) -> float:
    """Root-mean-square level, 0..1."""
    if not pcm:
        return 0.0
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    return float(np.sqrt(np.mean(samples**2)))
