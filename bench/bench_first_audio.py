"""When the caller hears the agent's first words, and whether the answer then flows: the TTS
cost of short texts per voice, and each way of cutting the LLM's stream for the TTS played out
on the real models (results in docs/pipeline.md "First audio").

Part 1, per installed voice: time to the first audio chunk and the audio it gives for texts of
1 to 12 words (what a first piece of that length costs).

Part 2, per chunking policy (``ClauseChunker`` parameters), with the profile's LLM and default
voice as the pipeline runs them - the LLM streaming into the chunker while the TTS speaks the
pieces one after another in its own thread (voice_pipeline/pipeline.py) - on a set of caller
lines: the time from the first LLM token to the first audio, the first piece's words, and the
silences the caller would hear *inside* the answer: piece k+1 starts playing when it is ready or
when piece k has finished, whichever is later; a later "ready" is a gap.

    .venv/bin/python bench/bench_first_audio.py --models default --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_latency import cpu_model, percentile  # noqa: E402

from callagent.app.components import prepare  # noqa: E402
from callagent.dialog.llm import ChatMessage, LanguageModel  # noqa: E402
from callagent.dialog.prompt import build_system_prompt  # noqa: E402
from callagent.modelfiles.voices import installed_voices  # noqa: E402
from callagent.settings import load_settings  # noqa: E402
from callagent.voice_pipeline.text_chunker import ClauseChunker  # noqa: E402
from callagent.voice_pipeline.tts import TextToSpeech, VoiceFiles, VoiceLibrary  # noqa: E402

WORDS = "Sure thing, our installers can usually fit the panels within two days of the survey."
LENGTHS = [1, 2, 3, 4, 6, 8, 12]

CALLER_LINES = [
    "Hello, I saw your advert about solar panels. Can you tell me more?",
    "How long does the installation take?",
    "What warranty do the panels come with?",
    "Do I need to be at home for the survey?",
    "Is there any way to pay monthly instead?",
    "I'm not sure it's worth it for a small house like mine.",
]

# opening_pieces is 1 unless given: only the first piece follows the first-piece rules.
POLICIES: dict[str, dict[str, Any]] = {
    "1st boundary, <= 8 (before)": {
        "first_min_words": 1,
        "first_max_words": 8,
        "opening_pieces": 1,
    },
    "first >= 3 words, <= 6": {"first_min_words": 3, "first_max_words": 6},
    "first >= 4 words, <= 10": {"first_min_words": 4, "first_max_words": 10},
    "2 pieces <= 4 words (now)": {"first_min_words": 1, "first_max_words": 4, "opening_pieces": 2},
    "3 pieces <= 4 words": {"first_min_words": 1, "first_max_words": 4, "opening_pieces": 3},
    "3 pieces <= 3 words": {"first_min_words": 1, "first_max_words": 3, "opening_pieces": 3},
}


async def first_chunk(tts: TextToSpeech, text: str) -> tuple[float, float]:
    """Seconds to the first audio chunk of ``text``, and seconds of audio it speaks."""
    started = time.perf_counter()
    first: float | None = None
    samples = 0
    async for chunk in tts.synthesize(text):
        if first is None:
            first = time.perf_counter() - started
        samples += len(chunk) // 2
    return first or 0.0, samples / tts.sample_rate


@dataclass
class Played:
    """One answer as the caller hears it."""

    first_token_s: float = 0.0
    first_audio_s: float = 0.0
    """From the first LLM token to the first audio of the answer."""
    first_words: int = 0
    pieces: int = 0
    gaps_s: list[float] = field(default_factory=list)
    """Silences between two pieces (0 when the next was ready in time)."""


async def speak(
    llm: LanguageModel, tts: TextToSpeech, messages: list[ChatMessage], policy: dict[str, Any]
) -> Played:
    """One answer through the chunker and the TTS as the pipeline runs them."""
    chunker = ClauseChunker(**{"opening_pieces": 1, **policy})
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    played = Played()
    started = time.perf_counter()
    first_token: float | None = None

    async def produce() -> None:
        nonlocal first_token
        try:
            async for delta in llm.stream(messages):
                if first_token is None:
                    first_token = time.perf_counter()
                for piece in chunker.push(delta):
                    pieces.put_nowait(piece)
            for piece in chunker.flush():
                pieces.put_nowait(piece)
        finally:
            pieces.put_nowait(None)

    async def say() -> None:
        playing_until: float | None = None
        while (piece := await pieces.get()) is not None:
            began = time.perf_counter()
            ready, seconds = await first_chunk(tts, piece)
            ready_at = began + ready
            if playing_until is None:
                assert first_token is not None
                played.first_token_s = first_token - started
                played.first_audio_s = ready_at - first_token
                played.first_words = len(piece.split())
                playing_until = ready_at + seconds
            else:
                played.gaps_s.append(max(0.0, ready_at - playing_until))
                playing_until = max(ready_at, playing_until) + seconds
            played.pieces += 1

    async with asyncio.TaskGroup() as group:
        group.create_task(produce())
        group.create_task(say())
    return played


async def run(args: argparse.Namespace) -> None:
    settings = load_settings(
        overrides={("models", "profile"): args.models, ("models", "models_dir"): REPO / "models"}
    )
    engines, profile = await prepare(settings)
    print(
        f"profile {args.models}, {cpu_model()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if not args.skip_voices:
        catalog = installed_voices(REPO / "models", args.models)
        print("\nTTS first chunk ms / audio ms, by words in the text (p50 of the repeats)")
        print(f"{'voice':<16}" + "".join(f"{n:>5} words" for n in LENGTHS))
        for voice in catalog.voices:
            files = VoiceFiles(voice.name, voice.engine, voice.model_path, voice.config_path)
            tts = await VoiceLibrary([files], default=engines.tts).tts_for(voice.name)
            await first_chunk(tts, "Hello there.")  # first use loads lazily: not measured
            cells = []
            for n in LENGTHS:
                text = " ".join(WORDS.split()[:n]).rstrip(",") + "."
                runs = [await first_chunk(tts, text) for _ in range(args.repeat)]
                first = percentile([r[0] * 1000 for r in runs], 50)
                cells.append(f"{first:>5.0f}/{runs[0][1] * 1000:<5.0f}")
            print(f"{voice.name:<16}" + "".join(cells))
    system = build_system_prompt(profile)
    print(
        "\nPer policy, default voice, "
        f"{len(CALLER_LINES)} caller lines x {args.repeat}: first token -> first audio p50/p95 ms,"
        " words in the first piece p50,\ngaps inside the answer: p50/p95/max ms, how many > 150 ms"
    )
    for name, policy in POLICIES.items():
        answers: list[Played] = []
        for _ in range(args.repeat):
            for line in CALLER_LINES:
                messages: list[ChatMessage] = [
                    {"role": "system", "content": system},
                    {"role": "user", "content": line},
                ]
                answers.append(await speak(engines.llm, engines.tts, messages, policy))
        firsts = [a.first_audio_s * 1000 for a in answers]
        gaps = [g * 1000 for a in answers for g in a.gaps_s] or [0.0]
        words = [float(a.first_words) for a in answers]
        # The silence right after the first piece: a one-word opening then a wait is the worst.
        after_first = [a.gaps_s[0] * 1000 for a in answers if a.gaps_s] or [0.0]
        print(
            f"{name:<28} first audio {percentile(firsts, 50):>5.0f}/{percentile(firsts, 95):<5.0f}"
            f" words {percentile(words, 50):>3.0f}  gaps {percentile(gaps, 50):>4.0f}/"
            f"{percentile(gaps, 95):>4.0f}/{max(gaps):>4.0f}  >150 ms: "
            f"{sum(1 for g in gaps if g > 150)} of {len(gaps)}"
            f"  after the 1st p50/max {percentile(after_first, 50):>4.0f}/{max(after_first):>4.0f}"
            f"  pieces {sum(a.pieces for a in answers)}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ci")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-voices", action="store_true", help="only the policies")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
