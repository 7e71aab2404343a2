"""Benchmark the installed voices (docs/models.md, "Voices"): what choosing one costs a call.

For every voice installed in the models folder (``callagent.modelfiles.installed_voices``) it
prints the load time (the first call of an agent with that voice waits for it, once per node),
the time to the first audio chunk of short agent replies, the real-time factor, the median pitch
of the speech on a phone line (8 kHz), and whether Whisper tiny.en hears the words there.

Run: ``.venv/bin/python bench/bench_voices.py [--models-dir models] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the models folder is all there is (air-gapped)

from callagent.modelfiles import installed_voices
from callagent.voice_pipeline.audio import resample
from callagent.voice_pipeline.stt import WhisperSpeechToText
from callagent.voice_pipeline.tts import TextToSpeech, VoiceFiles, VoiceLibrary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.pitch import median_pitch_hz  # the tests' pitch tracker: one measure for both

REPLIES = (
    "Sure, I can call you back on Friday.",
    "The premium plan is fifty five dollars a month, and there is no contract.",
    "Hello, this is Anna from Brightline Solar. How can I help you today?",
    "No problem at all, I have taken your number off our list.",
    "Our panels come with a twenty five year warranty.",
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def first_chunk(tts: TextToSpeech, text: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    first = 0.0
    chunks: list[bytes] = []
    async for chunk in tts.synthesize(text):
        if not chunks:
            first = time.perf_counter() - started
        chunks.append(chunk)
    return first, b"".join(chunks)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    catalog = installed_voices(args.models_dir, args.profile)
    stt = WhisperSpeechToText(args.models_dir / "whisper-tiny.en")
    print(f"{len(catalog.voices)} voices installed; default {catalog.default or '(none)'}")
    print("voice | engine | Hz | MB | load s | first chunk p50/p95 ms | RTF | pitch Hz | heard")
    for voice in catalog.voices:
        files = VoiceFiles(voice.name, voice.engine, voice.model_path, voice.config_path)
        library = VoiceLibrary([files], default=_Nothing(), default_name="")
        started = time.perf_counter()
        tts = await library.tts_for(voice.name)
        load_s = time.perf_counter() - started
        firsts: list[float] = []
        audio_s = synth_s = 0.0
        heard = total = 0
        pitches: list[float] = []
        for round_index in range(args.repeat):
            for text in REPLIES:
                began = time.perf_counter()
                first, pcm = await first_chunk(tts, text)
                synth_s += time.perf_counter() - began
                audio_s += len(pcm) / 2 / tts.sample_rate
                firsts.append(first * 1000)
                if round_index == 0:
                    phone = resample(pcm, tts.sample_rate, 8000)
                    pitches.append(median_pitch_hz(phone, 8000))
                    words = set((await stt.transcribe(phone, 8000)).text.lower().split())
                    wanted = {w.strip(".,?").lower() for w in text.split() if len(w) > 4}
                    heard += len(wanted & {w.strip(".,?") for w in words})
                    total += len(wanted)
        print(
            f"{voice.name} | {voice.engine} | {tts.sample_rate} | {voice.size / 1e6:.1f} | "
            f"{load_s:.2f} | {percentile(firsts, 0.5):.0f} / {percentile(firsts, 0.95):.0f} | "
            f"{synth_s / audio_s:.3f} | {statistics.median(pitches):.0f} | {heard}/{total}"
        )


class _Nothing:
    """No default voice: the benchmark loads each voice itself."""

    sample_rate = 16000

    async def synthesize(self, text: str):  # type: ignore[no-untyped-def]
        raise AssertionError("the benchmark never speaks with the default")
        yield b""


if __name__ == "__main__":
    asyncio.run(main())
