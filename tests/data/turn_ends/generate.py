"""Render the labelled caller turns of ``manifest.json`` to phone audio, cached.

Each turn is spoken by Debian's flite (voices unrelated to the agent's Piper voice; espeak-ng
at 8 kHz makes Whisper hallucinate, DESIGN.md "Known traps"), one segment at a time. Each
segment's own leading and trailing silence is cut, so the pauses between segments are exactly
the manifest's ``pauses_ms``; the turn really ends where its last segment's speech ends. The
result is 8 kHz, through a µ-law round trip, with a faint line hiss, half a second of quiet
before the turn and two seconds after.

    python tests/data/turn_ends/generate.py [--cache DIR]   # renders every turn, prints them
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
RATE = 8000
LEAD_S = 0.5
TAIL_S = 2.0
HISS_LEVEL = 0.0015  # about -56 dBFS: a quiet line, well under webrtcvad's speech


@dataclass(frozen=True, slots=True)
class LabelledTurn:
    """One caller turn: its audio and where its speech really is."""

    id: str
    split: str  # "tune" or "held_out"
    text: str  # the segments, joined with " … " where the caller pauses
    pcm: bytes  # s16le mono at RATE
    speech: tuple[tuple[float, float], ...]  # (start, end) s of each segment's speech

    @property
    def turn_end(self) -> float:
        """Where the caller really finished: the end of the last segment's speech."""
        return self.speech[-1][1]


def default_cache() -> Path:
    """Where rendered turns are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callagent" / "turn_ends"


def load_manifest(path: Path = MANIFEST) -> list[dict[str, object]]:
    """The turns of the manifest, checked: a malformed entry is an error naming it."""
    turns = json.loads(path.read_text())["turns"]
    for turn in turns:
        segments, pauses = turn["segments"], turn["pauses_ms"]
        if not segments or len(pauses) != len(segments) - 1:
            raise ValueError(f"{path}: turn {turn['id']} needs one pause between each segment")
        if turn["split"] not in ("tune", "held_out"):
            raise ValueError(f"{path}: turn {turn['id']} has split {turn['split']!r}")
    return turns


def _mu_law_round_trip(samples: np.ndarray) -> np.ndarray:
    mu = 255.0
    clipped = np.clip(samples, -1.0, 1.0)
    encoded = np.sign(clipped) * np.log1p(mu * np.abs(clipped)) / np.log1p(mu)
    quantised = np.round(encoded * 127.0) / 127.0
    return np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu


def _speak(text: str, voice: str) -> np.ndarray:
    """flite's rendering of ``text`` at RATE, its leading and trailing silence cut."""
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "segment.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
        samples, source_rate = soundfile.read(str(raw), dtype="float32")
    samples = soxr.resample(samples, source_rate, RATE)
    window = RATE // 100  # 10 ms
    levels = [
        float(np.sqrt(np.mean(samples[i : i + window] ** 2)))
        for i in range(0, len(samples) - window + 1, window)
    ]
    loud = [i for i, level in enumerate(levels) if level > 0.01]
    if not loud:
        raise ValueError(f"flite said nothing audible for {text!r}")
    return samples[loud[0] * window : (loud[-1] + 1) * window]


def render(turn: dict[str, object], cache: Path) -> LabelledTurn:
    """The turn's audio and labels, from ``cache`` when it was rendered before."""
    segments: list[str] = turn["segments"]  # type: ignore[assignment]
    pauses: list[int] = turn["pauses_ms"]  # type: ignore[assignment]
    voice = str(turn["voice"])
    key = hashlib.sha256(json.dumps([segments, pauses, voice, 1]).encode()).hexdigest()[:16]
    wav, labels = cache / f"{turn['id']}-{key}.wav", cache / f"{turn['id']}-{key}.json"
    if not (wav.exists() and labels.exists()):
        cache.mkdir(parents=True, exist_ok=True)
        parts = [np.zeros(int(LEAD_S * RATE), dtype=np.float32)]
        speech: list[tuple[float, float]] = []
        position = len(parts[0])
        for i, text in enumerate(segments):
            spoken = _speak(text, voice)
            speech.append((position / RATE, (position + len(spoken)) / RATE))
            parts.append(spoken)
            position += len(spoken)
            gap = pauses[i] / 1000 if i < len(pauses) else TAIL_S
            parts.append(np.zeros(int(gap * RATE), dtype=np.float32))
            position += int(gap * RATE)
        audio = np.concatenate(parts)
        rng = np.random.default_rng(int(key[:8], 16))
        audio = _mu_law_round_trip(audio + rng.normal(0.0, HISS_LEVEL, len(audio)))
        # Written whole, then renamed: a run stopped half-way leaves no half-written turn.
        partial = wav.with_suffix(".part.wav")
        soundfile.write(str(partial), audio.astype(np.float32), RATE, subtype="PCM_16")
        partial.replace(wav)
        labels.write_text(json.dumps({"speech": speech}))
    pcm_samples, rate = soundfile.read(str(wav), dtype="int16")
    if rate != RATE:
        raise ValueError(f"{wav}: expected {RATE} Hz, got {rate}")
    spans = tuple(tuple(span) for span in json.loads(labels.read_text())["speech"])
    return LabelledTurn(
        id=str(turn["id"]),
        split=str(turn["split"]),
        text=" … ".join(segments),
        pcm=pcm_samples.astype("<i2").tobytes(),
        speech=spans,  # type: ignore[arg-type]
    )


def load_turns(cache: Path | None = None) -> list[LabelledTurn]:
    """Every turn of the manifest, rendered (or taken from the cache)."""
    return [render(turn, cache or default_cache()) for turn in load_manifest()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args()
    for turn in load_turns(args.cache):
        pauses = [round(b[0] - a[1], 2) for a, b in zip(turn.speech, turn.speech[1:], strict=False)]
        print(f"{turn.id} {turn.split:8} end {turn.turn_end:5.2f}s pauses {pauses} {turn.text}")
    print(f"cached in {args.cache}", file=sys.stderr)


if __name__ == "__main__":
    main()
