"""Caller recordings made by other synthesisers than the agent's own voice.

Debian's flite speaks with voices unrelated to Piper's, so the STT is tested on speech it
was not tuned for. Audio goes to 8 kHz and through a µ-law round trip, like a phone line
(DESIGN.md, Known traps: espeak-ng voices at 8 kHz make Whisper hallucinate; flite is a fair
voice).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
import soxr


def mu_law_round_trip(samples: np.ndarray) -> np.ndarray:
    """Encode float samples with G.711 µ-law (µ = 255) and decode them again."""
    mu = 255.0
    clipped = np.clip(samples, -1.0, 1.0)
    encoded = np.sign(clipped) * np.log1p(mu * np.abs(clipped)) / np.log1p(mu)
    quantised = np.round(encoded * 127.0) / 127.0  # 8 bits: sign + 7 magnitude bits
    return np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu


def flite_available() -> bool:
    """True when Debian's flite is installed."""
    return shutil.which("flite") is not None


def flite_phone_wav(text: str, path: Path, voice: str = "slt", rate: int = 8000) -> Path:
    """Speak ``text`` with flite, as a phone line would carry it: ``rate`` Hz, µ-law."""
    raw = path.with_suffix(".flite.wav")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
    samples, source_rate = soundfile.read(str(raw), dtype="float32")
    phone = mu_law_round_trip(soxr.resample(samples, source_rate, rate))
    soundfile.write(str(path), phone.astype(np.float32), rate, subtype="PCM_16")
    raw.unlink()
    return path


def word_set(text: str) -> set[str]:
    """Lower-case words without punctuation."""
    cleaned = "".join(c.lower() if c.isalnum() or c in "' " else " " for c in text)
    return set(cleaned.split())
