"""Benchmark the local models to choose the ``default`` and ``server`` profiles.

The results and the choice are in docs/models.md.

For every model of ``models/manifest.json`` that is present in the models folder it prints:

* Whisper (CTranslate2, int8, 2 threads, beam 1): real-time factor and word error rate on
  telephone-band test speech: sentences spoken by Piper (joe-medium) and, when Debian's ``flite``
  is installed, by flite voices, each taken down to 8 kHz and back up to 16 kHz with soxr as a
  call through Asterisk would be (DESIGN.md: espeak-ng voices make Whisper hallucinate at 8 kHz,
  so they are not used).
* Each GGUF (llama.cpp, 2 threads, n_ctx 2048): time to first token with a cold and with a warm
  prefix cache (the same ~400-token system prompt, another user message), decode tokens/s, and
  one sample answer to a phone-sales question so the quality can be judged by eye.
* Piper: time to the first audio chunk of a short reply.

Run: ``.venv/bin/python bench/bench_models.py [--models-dir models] [--skip-stt] [--skip-llm]``.
Results and the profile choice they led to are in ``docs/models.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Never reach a model hub: every weight comes from models/ (the install is air-gapped, DESIGN.md).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import soxr

from callagent.modelfiles import load_manifest

THREADS = 2

# Short caller utterances of the kind the agent must understand on a call.
SENTENCES = (
    "Hello, I am calling about the offer you sent me last week.",
    "Could you call me back tomorrow afternoon at three o'clock?",
    "I am not interested right now, please remove my number from your list.",
    "How much does the premium plan cost per month, and is there a contract?",
    "My email address is john dot smith at example dot com.",
)

# ~400 tokens, byte-stable across turns so llama.cpp can reuse its prefix cache (DESIGN.md).
SYSTEM_PROMPT = """You are Anna, a friendly phone sales agent for BrightNet, a regional internet \
provider. You are on a live phone call: answer in one or two short spoken sentences, never use \
lists, markdown, emojis or abbreviations, and always end with a question that moves the call \
forward.

Facts about BrightNet you may use:
- Plans: Basic, 100 megabits per second for 25 dollars a month; Plus, 500 megabits for 39 \
dollars a month; Premium, 1 gigabit for 55 dollars a month.
- There is no long-term contract: customers can cancel any month. Installation is free for \
orders placed this month, otherwise it costs 49 dollars.
- Every plan includes a wifi router, unlimited data, and 24/7 phone support.
- A technician can install service within 5 working days in most of the city.
- New customers get the first month at half price.

Rules:
- Be polite and brief. Never invent prices, dates or offers that are not listed above.
- If the person says they are not interested, thank them, offer to send information by email, \
and ask if a later call is welcome.
- If the person asks to be removed from the list, confirm that they will not be called again \
and end the call politely.
- If the person wants a callback, ask for a day and time and confirm it back.
- If the person asks something you do not know, say a specialist will call back, and ask when \
suits them.
- If the person is busy, offer to call back later and ask when.
- If the person asks whether you are a robot, say you are an automated assistant for BrightNet.
- Never ask for bank or card details on the phone.
- Speak naturally, like a person on the phone, not like a written document.

Your goal on this call: find out whether the person is happy with their current internet \
service and, if they are interested, book a short call with a BrightNet advisor."""

COLD_QUESTION = "Hi, who is this? Why are you calling me?"
# The next turn of the same call: the history now holds the model's own first answer, so this
# shows whether the prefix cache survives a real conversation, not only a repeated prompt.
SECOND_TURN = "Okay. And what does it cost?"
# A long caller turn (~60 tokens): prompt processing grows with it even when the prefix is warm.
LONG_QUESTION = (
    "Look, I have been with my current provider for six years, the price went up twice this "
    "year and the connection drops every evening when my kids are streaming, so tell me "
    "honestly, what would I pay with you and how fast could you install it?"
)
WARM_QUESTIONS = (
    "How much is the fastest plan, and do I have to sign a contract?",
    "I'm busy right now, can you call me back on Friday?",
    "Do you charge for installation?",
    "I already have internet with another company, why should I switch?",
)


@dataclass
class Clip:
    """A test utterance at 16 kHz after a trip through the 8 kHz telephone band."""

    voice: str
    text: str
    audio: np.ndarray  # float32, 16 kHz

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


def telephone_band(audio: np.ndarray, rate: int) -> np.ndarray:
    """Down to 8 kHz (what AudioSocket carries) and back up to 16 kHz (what Whisper wants)."""
    narrow = soxr.resample(audio.astype(np.float32), rate, 8000)
    return soxr.resample(narrow, 8000, 16000).astype(np.float32)


def piper_clips(models_dir: Path) -> list[Clip]:
    from piper import PiperVoice

    voice = PiperVoice.load(
        models_dir / "piper/en_US-joe-medium.onnx",
        models_dir / "piper/en_US-joe-medium.onnx.json",
    )
    clips = []
    for text in SENTENCES:
        chunks = list(voice.synthesize(text))
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
        clips.append(Clip("piper-joe", text, telephone_band(audio, chunks[0].sample_rate)))
    return clips


def flite_clips(voices: Sequence[str] = ("slt", "rms")) -> list[Clip]:
    if shutil.which("flite") is None:
        print("flite not installed (apt-get install -y flite): Piper voice only", file=sys.stderr)
        return []
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in voices:
            for index, text in enumerate(SENTENCES):
                path = Path(tmp) / f"{voice}{index}.wav"
                subprocess.run(
                    ["flite", "-voice", voice, "-t", text, "-o", str(path)],
                    check=True,
                    capture_output=True,
                )
                with wave.open(str(path)) as wav:
                    rate = wav.getframerate()
                    pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
                clips.append(Clip(f"flite-{voice}", text, telephone_band(pcm / 32768.0, rate)))
    return clips


_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_CONTRACTIONS = {"i'm": ("i", "am"), "i'll": ("i", "will"), "it's": ("it", "is")}
_NUMBERS = {str(n): word for n, word in enumerate(_DIGIT_WORDS)} | {"10": "ten"}


def words(text: str) -> list[str]:
    """Normalised words: digits spelled out, "dot" and "." alike, so only real errors count."""
    text = text.lower().replace("o'clock", " oclock").replace("@", " at ")
    text = re.sub(r"\d+", lambda match: f" {_NUMBERS.get(match.group(), match.group())} ", text)
    out: list[str] = []
    for word in re.findall(r"[a-z0-9']+", text):
        if word != "dot":
            out.extend(_CONTRACTIONS.get(word, (word,)))
    return out


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference word count)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1], len(ref)


def bench_whisper(name: str, model_dir: Path, clips: Sequence[Clip], repeat: int) -> None:
    from faster_whisper import WhisperModel

    started = time.perf_counter()
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=THREADS)
    load = time.perf_counter() - started

    def transcribe(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(audio, beam_size=1, language="en")
        # Transcription only happens while iterating the segments (DESIGN.md practice 5).
        return " ".join(segment.text.strip() for segment in segments)

    transcribe(clips[0].audio)  # first call allocates; not what a call sees
    by_voice: dict[str, list[tuple[float, float, int, int]]] = {}
    samples: list[str] = []
    for clip in clips:
        # Best of ``repeat``: the machine is shared, the minimum is the least disturbed run.
        elapsed = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            text = transcribe(clip.audio)
            elapsed = min(elapsed, time.perf_counter() - started)
        errors, total = word_errors(clip.text, text)
        by_voice.setdefault(clip.voice, []).append((elapsed, clip.seconds, errors, total))
        if errors:
            samples.append(f"    {clip.voice}: {text!r}")
    print(f"\n== STT {name} (load {load:.2f} s; best of {repeat} per utterance)")
    for voice, rows in [*by_voice.items(), ("all", [r for rs in by_voice.values() for r in rs])]:
        spent = sum(r[0] for r in rows)
        audio = sum(r[1] for r in rows)
        wer = sum(r[2] for r in rows) / sum(r[3] for r in rows)
        per_clip = statistics.median(r[0] for r in rows)
        print(
            f"  {voice:10s} RTF {spent / audio:.3f}  median {per_clip * 1000:.0f} ms per "
            f"{audio / len(rows):.1f} s utterance  WER {wer:.1%}"
        )
    print("  transcripts with errors:" if samples else "  no word errors")
    for line in samples:
        print(line)


def bench_llm(name: str, path: Path, repeat: int) -> None:
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=THREADS, verbose=False)
    load = time.perf_counter() - started
    system_tokens = len(llm.tokenize(SYSTEM_PROMPT.encode()))

    def ask(*turns: str) -> tuple[float, float, str]:
        """(time to first token, decode tokens/s, answer) for alternating user/assistant turns."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for index, content in enumerate(turns):
            messages.append({"role": "assistant" if index % 2 else "user", "content": content})
        started = time.perf_counter()
        first = last = 0.0
        pieces: list[str] = []
        for chunk in llm.create_chat_completion(
            messages,  # type: ignore[arg-type]
            stream=True,
            max_tokens=48,
            temperature=0.3,
        ):
            content = chunk["choices"][0]["delta"].get("content")  # type: ignore[index]
            if not content:
                continue
            now = time.perf_counter()
            if not pieces:
                first = now - started
            last = now - started
            pieces.append(content)
        rate = (len(pieces) - 1) / (last - first) if last > first else float("nan")
        return first, rate, "".join(pieces).strip()

    cold: list[float] = []
    second: list[float] = []
    warm: list[float] = []
    long: list[float] = []
    rates: list[float] = []
    answers: dict[str, str] = {}
    for _ in range(repeat):
        # reset() forgets the evaluated tokens: the next prompt is processed from scratch,
        # as for the first call after start-up or after another prompt evicted the prefix.
        llm.reset()
        first, rate, opening = ask(COLD_QUESTION)
        answers[COLD_QUESTION] = opening
        cold.append(first)
        rates.append(rate)
        first, rate, answers[f"(after that answer) {SECOND_TURN}"] = ask(
            COLD_QUESTION, opening, SECOND_TURN
        )
        second.append(first)
        rates.append(rate)
        for question in WARM_QUESTIONS:
            first, rate, answers[question] = ask(question)
            warm.append(first)
            rates.append(rate)
        first, rate, answers[LONG_QUESTION] = ask(LONG_QUESTION)
        long.append(first)
        rates.append(rate)

    def ms(values: Sequence[float]) -> str:
        return f"{min(values) * 1000:.0f} / {statistics.median(values) * 1000:.0f} ms"

    print(f"\n== LLM {name} ({path.stat().st_size / 1e6:.0f} MB, load {load:.2f} s)")
    print(f"  system prompt {system_tokens} tokens; {repeat} rounds; best / median")
    print(f"  first token, cold prefix: {ms(cold)} ({system_tokens / min(cold):.0f} prompt tok/s)")
    print(f"  first token, second turn of the call: {ms(second)}")
    print(f"  first token, warm prefix, short question: {ms(warm)}")
    print(f"  first token, warm prefix, ~60-token caller turn: {ms(long)}")
    print(f"  decode: {max(rates):.1f} / {statistics.median(rates):.1f} tokens/s")
    for question, answer in answers.items():
        print(f"  Q: {question}\n  A: {answer}")


def bench_piper(models_dir: Path) -> None:
    from piper import PiperVoice

    voice = PiperVoice.load(
        models_dir / "piper/en_US-joe-medium.onnx",
        models_dir / "piper/en_US-joe-medium.onnx.json",
    )
    next(iter(voice.synthesize("Warm up.")))
    times = []
    seconds = 0.0
    for text in ("Sure, I can call you back on Friday.", "Installation is free this month."):
        started = time.perf_counter()
        chunk = next(iter(voice.synthesize(text)))
        times.append(time.perf_counter() - started)
        seconds += len(chunk.audio_float_array) / chunk.sample_rate
    print(
        f"\n== TTS piper-joe-medium: first audio of a short sentence in "
        f"{statistics.mean(times) * 1000:.0f} ms (RTF {sum(times) / seconds:.3f})"
    )


def _cpu_seconds() -> tuple[float, float, float]:
    """(busy seconds of the whole machine, elapsed CPU seconds, this process's CPU seconds)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    own = os.times()
    return (sum(fields) - idle) / tick, sum(fields) / tick, own.user + own.system


class Contention:
    """How much CPU other processes took while a section ran.

    The machine is shared with other work; llama.cpp's threads wait for each other at every
    layer, so one busy core can stall a 2-thread prompt for seconds. Each section prints this
    share so its figures can be judged, and ``wait_idle`` starts sections in quiet moments.
    """

    def __enter__(self) -> Contention:
        self.start = _cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        busy, total, own = (
            end - start for end, start in zip(_cpu_seconds(), self.start, strict=True)
        )
        share = max(busy - own, 0.0) / total if total > 0 else 0.0
        print(f"  (other processes used {share:.0%} of the machine's CPU during this section)")


def wait_idle(max_wait: float, threshold: float = 0.1) -> None:
    """Wait (up to ``max_wait`` s) until the CPU is ~idle over a 3 s window."""
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        busy0, total0, _ = _cpu_seconds()
        time.sleep(3)
        busy1, total1, _ = _cpu_seconds()
        if (busy1 - busy0) / max(total1 - total0, 1e-9) < threshold:
            return
    print(f"  (machine still busy after waiting {max_wait:.0f} s; measuring anyway)")


def machine() -> str:
    model = platform.processor() or "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, {THREADS} threads used"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--skip-stt", action="store_true")
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per measurement")
    parser.add_argument("--only", action="append", help="bench only these models (by name)")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, help="seconds to wait for an idle CPU per section"
    )
    args = parser.parse_args(argv)
    models_dir: Path = args.models_dir
    manifest = load_manifest(models_dir)
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")

    def present(model_name: str) -> bool:
        if args.only and model_name not in args.only:
            return False
        return all((models_dir / spec.path).is_file() for spec in manifest.models[model_name].files)

    if not args.skip_stt:
        clips = piper_clips(models_dir) + flite_clips()
        print(
            f"test speech: {len(clips)} utterances, "
            f"{sum(c.seconds for c in clips):.1f} s, via 8 kHz"
        )
        for model in manifest.models.values():
            if model.kind == "stt" and present(model.name):
                model_dir = models_dir / Path(model.files[0].path).parent
                wait_idle(args.wait_idle)
                with Contention():
                    bench_whisper(model.name, model_dir, clips, args.repeat)
        wait_idle(args.wait_idle)
        with Contention():
            bench_piper(models_dir)
    if not args.skip_llm:
        for model in manifest.models.values():
            if model.kind == "llm" and present(model.name):
                wait_idle(args.wait_idle)
                with Contention():
                    bench_llm(model.name, models_dir / model.files[0].path, args.repeat)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
