"""How high a voice is: the median fundamental frequency of its voiced 40 ms frames.

An autocorrelation pitch tracker, enough to tell a male voice (about 85-155 Hz) from a female one
(about 165-255 Hz) on phone audio; measured here: Piper joe 114 Hz, hibari heart 210 Hz.
"""

from __future__ import annotations

import numpy as np


def median_pitch_hz(pcm: bytes, rate: int, *, low_hz: float = 60, high_hz: float = 400) -> float:
    """The median pitch of 16-bit mono ``pcm`` at ``rate`` over its voiced frames (those whose
    normalised autocorrelation peak is above 0.5); NaN when no frame is voiced."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    size, hop = int(0.04 * rate), int(0.01 * rate)
    shortest, longest = int(rate / high_hz), int(rate / low_hz)
    pitches: list[float] = []
    for start in range(0, len(samples) - size, hop):
        frame = samples[start : start + size]
        frame = frame - frame.mean()
        energy = float(np.dot(frame, frame))
        if energy < 1e-4 * size:  # silence between words
            continue
        correlation = np.correlate(frame, frame, "full")[size - 1 :] / energy
        lag = shortest + int(np.argmax(correlation[shortest:longest]))
        if correlation[lag] > 0.5:
            pitches.append(rate / lag)
    return float(np.median(pitches)) if pitches else float("nan")
