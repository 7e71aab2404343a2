"""End of turn: the fixed pause against the pause chosen from the words, on labelled turns.

The caller turns of tests/data/turn_ends/manifest.json (flite voices over a µ-law line, with
mid-turn pauses of 0.5-1.2 s) go through the real VAD and the real end-of-turn policy on a
simulated clock, frame by frame, as the pipeline drives them. At every pause the VAD reports,
the turn so far is transcribed by the real faster-whisper (tiny.en, int8, beam 1: the model
of both profiles); its text reaches the policy as much later as transcription took. The
transcripts and their measured times are cached, so tuning reruns only the decision logic.

Prints, for the old fixed pause and the words policy, on the tuning and the held-out turns:
false cut-ins (the turn ended inside a real turn), and the wait after the real end of the turn
(mean, p50, p95) - both until the turn is decided and until the answer can start (turn decided
and its transcript ready; the LLM needs both). Results: docs/pipeline.md "End of turn".

    .venv/bin/python bench/bench_turn_end.py [--rerun-stt] [--show]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "data" / "turn_ends"))

from generate import RATE, LabelledTurn, default_cache, load_turns  # noqa: E402

from callagent.voice_pipeline.frames import AudioFrame, frame_bytes  # noqa: E402
from callagent.voice_pipeline.turns import EndOfTurnPolicy, TurnSettings, WordsSay  # noqa: E402
from callagent.voice_pipeline.vad import (  # noqa: E402
    SpeechEnded,
    SpeechStarted,
    VadSettings,
    VoiceActivityDetector,
)

FRAME_S = 0.02
DEFAULTS = TurnSettings()


def cpu_model() -> str:
    """The processor's model name, as Linux reports it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank on the sorted values)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]


class CachedTranscriber:
    """faster-whisper on a turn's audio so far, each prefix transcribed (and timed) once."""

    def __init__(self, cache_file: Path, rerun: bool) -> None:
        self._file = cache_file
        self._cache: dict[str, dict[str, object]] = {}
        if cache_file.exists() and not rerun:
            self._cache = json.loads(cache_file.read_text())
        self._stt: object | None = None
        self._used: set[str] = set()

    def __call__(self, pcm: bytes) -> tuple[str, float]:
        key = hashlib.sha256(pcm).hexdigest()
        self._used.add(key)
        if key not in self._cache:
            text, seconds = self._transcribe(pcm)
            self._cache[key] = {"text": text, "seconds": seconds, "audio_s": len(pcm) / 2 / RATE}
        entry = self._cache[key]
        return str(entry["text"]), float(entry["seconds"])  # type: ignore[arg-type]

    def _transcribe(self, pcm: bytes) -> tuple[str, float]:
        import asyncio

        from callagent.voice_pipeline.stt import WhisperSpeechToText

        if self._stt is None:
            self._stt = WhisperSpeechToText(REPO / "models" / "whisper-tiny.en")
        started = time.perf_counter()
        transcript = asyncio.run(self._stt.transcribe(pcm, RATE))  # type: ignore[attr-defined]
        return transcript.text, time.perf_counter() - started

    def save(self) -> None:
        """Keep what was transcribed for the next run."""
        self._file.parent.mkdir(parents=True, exist_ok=True)
        partial = self._file.with_suffix(".part")
        partial.write_text(json.dumps(self._cache, indent=0))
        partial.replace(self._file)

    def costs(self) -> list[tuple[float, float]]:
        """(audio seconds, transcription seconds) of every prefix this run used."""
        entries = [self._cache[key] for key in self._used]
        return [(float(e["audio_s"]), float(e["seconds"])) for e in entries]  # type: ignore[arg-type]


class SmartTurn:
    """Pipecat's Smart Turn v3 (an audio-only end-of-turn model: Whisper-tiny encoder and a
    classifier, BSD-2), run from the pipecat-ai wheel that ships its CPU ONNX file - read from
    the wheel, without installing pipecat. Judges the last 8 s of the turn at 16 kHz."""

    def __init__(self, wheel: Path) -> None:
        import types
        import zipfile

        import onnxruntime

        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            model = next(
                n
                for n in names
                if n.startswith("pipecat/audio/turn/smart_turn/data/") and n.endswith("cpu.onnx")
            )
            onnx = archive.read(model)
            features = archive.read("pipecat/audio/turn/smart_turn/_whisper_features.py")
        module = types.ModuleType("smart_turn_features")
        exec(compile(features, "smart_turn_features", "exec"), module.__dict__)
        self._features = module.compute_whisper_log_mel_features
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # beside the LLM on 2 cores (DESIGN.md)
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(onnx, sess_options=options)
        self.name = model.rsplit("/", 1)[-1].removesuffix(".onnx")
        self._cache: dict[str, tuple[float, float]] = {}

    def __call__(self, pcm: bytes) -> tuple[float, float]:
        """(probability that the turn is over, seconds the judgement took)."""
        import numpy as np
        import soxr

        key = hashlib.sha256(pcm).hexdigest()
        if key not in self._cache:
            started = time.perf_counter()
            audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            audio = soxr.resample(audio, RATE, 16000)[-8 * 16000 :]
            audio = np.pad(audio, (8 * 16000 - len(audio), 0))
            log_mel = self._features(audio, do_normalize=True)
            (out,) = self._session.run(None, {"input_features": log_mel[None]})
            self._cache[key] = (float(out[0].item()), time.perf_counter() - started)
        return self._cache[key]

    def costs(self) -> list[float]:
        """Seconds each judgement took."""
        return [seconds for _, seconds in self._cache.values()]


@dataclass
class Outcome:
    """What a policy did on one turn."""

    cut_ins: list[float] = field(default_factory=list)  # decisions inside the real turn
    cut_in_texts: list[str | None] = field(default_factory=list)
    decided: float | None = None  # the turn's end, decided after the real end
    answer_ready: float | None = None  # decided and its transcript ready
    words: WordsSay | None = None
    text: str | None = None
    # Speculative answers (TurnSettings.speculate): started on a pause's words before the pause
    # ended the turn; wasted when the caller went on; the head start of the one that was used.
    speculations: int = 0
    wasted: int = 0
    at_cut_in: int = 0  # used by a decision inside the real turn (a cut-in)
    head_start: float | None = None


def simulate(
    turn: LabelledTurn,
    settings: TurnSettings,
    transcribe: CachedTranscriber,
    vad_settings: VadSettings,
    stt_seconds: float | None,
    smart_turn: SmartTurn | None = None,
) -> Outcome:
    """Drive the real VAD and policy over ``turn`` on a simulated clock, as the pipeline does
    (VoicePipeline._on_audio / _words_heard), and see where the turn is said to end."""
    vad = VoiceActivityDetector(RATE, vad_settings)
    policy = EndOfTurnPolicy(settings)
    outcome = Outcome()
    utterance = bytearray()
    # (judgement ready at, its pause's speech end, text, judgement, transcript ready at)
    pending: list[tuple[float, float, str, WordsSay | None, float]] = []
    merged_from: float | None = None  # a cut-in's speech end: the caller goes on, one turn
    size = frame_bytes(RATE)
    speculating_since: float | None = None  # a speculative answer under way, held silent
    speculated: set[float] = set()  # the pauses (by speech end) one was started in

    def decide(now: float) -> None:
        nonlocal merged_from, speculating_since
        if speculating_since is not None and now < turn.turn_end:
            outcome.at_cut_in += 1
        elif speculating_since is not None and outcome.decided is None:
            outcome.head_start = now - speculating_since
        speculating_since = None
        speech_end = policy.speech_end
        if now < turn.turn_end:
            outcome.cut_ins.append(now)
            outcome.cut_in_texts.append(policy.text)
            merged_from = speech_end
        elif outcome.decided is None:
            outcome.decided = now
            ready = next((r for _, end, _, _, r in pending if end == speech_end), now)
            outcome.answer_ready = max(now, ready)
            outcome.words, outcome.text = policy.words, policy.text
        policy.reset()

    for i in range(0, len(turn.pcm) - size + 1, size):
        start = i / 2 / RATE
        now = start + FRAME_S  # the frame has fully arrived
        for ready_at, speech_end, text, judged, _ in sorted(pending, key=lambda p: p[0]):
            heard = ready_at <= now and policy.words_heard(text, speech_end, judged) is not None
            if heard and policy.turn_complete(ready_at):
                decide(ready_at)
            elif (
                heard
                and settings.speculate
                and policy.turn_open
                and text.strip()
                and speech_end not in speculated
            ):
                speculated.add(speech_end)  # once per pause, as VoicePipeline._words_heard
                speculating_since = ready_at
                outcome.speculations += 1
        event = vad.process(AudioFrame(turn.pcm[i : i + size], RATE, start))
        if isinstance(event, SpeechStarted):
            pending.clear()  # new speech cancels the early transcription
            if speculating_since is not None:
                outcome.wasted += 1  # dropped without a sound: the caller went on
                speculating_since = None
            if merged_from is not None:
                policy.speech_started(merged_from)
                merged_from = None
            policy.speech_started(event.onset)
            utterance += event.audio
        elif policy.turn_open or merged_from is not None:
            utterance += turn.pcm[i : i + size]
        if isinstance(event, SpeechEnded):
            policy.speech_ended(event.end)
            text, seconds = transcribe(bytes(utterance))
            if stt_seconds is not None:
                seconds = stt_seconds  # the cost on a quiet machine, not today's shared one
            if smart_turn is None:
                pending.append((now + seconds, event.end, text, None, now + seconds))
            else:
                probability, judging = smart_turn(bytes(utterance))
                judged = WordsSay.COMPLETE if probability > 0.5 else WordsSay.INCOMPLETE
                pending.append((now + judging, event.end, text, judged, now + seconds))
        if policy.turn_complete(now):
            decide(now)
    return outcome


def stats(values: list[float]) -> str:
    if not values:
        return "   -     -     -  "
    ms = [v * 1000 for v in values]
    return f"{statistics.fmean(ms):5.0f} {percentile(ms, 50):5.0f} {percentile(ms, 95):5.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--rerun-stt", action="store_true", help="transcribe (and time) anew")
    parser.add_argument("--show", action="store_true", help="every turn's decisions")
    parser.add_argument("--fixed", type=float, default=0.45, help="the old fixed pause, s")
    parser.add_argument("--complete", type=float, default=DEFAULTS.complete_silence_s)
    parser.add_argument("--unsure", type=float, default=DEFAULTS.end_silence_s)
    parser.add_argument("--incomplete", type=float, default=DEFAULTS.incomplete_silence_s)
    parser.add_argument(
        "--stt-seconds",
        type=float,
        help="take this as every transcription's time instead of the time measured here "
        "(Whisper pads to 30 s, so its cost hardly depends on the length)",
    )
    parser.add_argument("--hangover-ms", type=int, default=VadSettings().hangover_ms)
    parser.add_argument(
        "--smart-turn-wheel",
        type=Path,
        help="a pipecat-ai wheel: also judge every pause with the Smart Turn v3 model it ships",
    )
    args = parser.parse_args()
    vad_settings = VadSettings(hangover_ms=args.hangover_ms)

    turns = load_turns(args.cache)
    transcriber = CachedTranscriber(args.cache / "transcripts.json", args.rerun_stt)
    policies = {
        f"fixed {args.fixed:.2f}s": TurnSettings(end_silence_s=args.fixed, use_words=False),
        f"words {args.complete:.2f}/{args.unsure:.2f}/{args.incomplete:.2f}s": TurnSettings(
            end_silence_s=args.unsure,
            complete_silence_s=args.complete,
            incomplete_silence_s=args.incomplete,
        ),
        "words + speculate": TurnSettings(
            end_silence_s=args.unsure,
            complete_silence_s=args.complete,
            incomplete_silence_s=args.incomplete,
            speculate=True,
        ),
    }
    results = {
        name: {
            turn.id: simulate(turn, settings, transcriber, vad_settings, args.stt_seconds)
            for turn in turns
        }
        for name, settings in policies.items()
    }
    smart_turn = SmartTurn(args.smart_turn_wheel) if args.smart_turn_wheel else None
    if smart_turn is not None:
        settings = policies[next(n for n in policies if n.startswith("words"))]
        results[f"{smart_turn.name} {args.complete:.2f}/{args.incomplete:.2f}s"] = {
            turn.id: simulate(
                turn, settings, transcriber, vad_settings, args.stt_seconds, smart_turn
            )
            for turn in turns
        }
    transcriber.save()

    print(f"{dt.date.today()}  {cpu_model()}, {len(turns)} labelled turns")
    costs = transcriber.costs()
    seconds = [s for _, s in costs]
    rtf = [s / a for a, s in costs if a > 0]
    print(
        f"STT of the turn so far at a pause (tiny.en int8 beam 1), {len(costs)} prefixes: "
        f"p50 {percentile(seconds, 50) * 1000:.0f} ms, p95 {percentile(seconds, 95) * 1000:.0f} "
        f"ms, real-time factor p50 {percentile(rtf, 50):.2f}"
    )
    if smart_turn is not None:
        cost = smart_turn.costs()
        print(
            f"{smart_turn.name} per pause (1 thread): p50 {percentile(cost, 50) * 1000:.0f} ms, "
            f"p95 {percentile(cost, 95) * 1000:.0f} ms"
        )
    if args.stt_seconds is not None:
        print(
            f"the policies below saw every transcript {args.stt_seconds * 1000:.0f} ms "
            "after it began"
        )
    print(f"VAD hang-over {args.hangover_ms} ms")
    print()
    header = (
        f"{'policy':30} {'split':8} {'turns':>5} {'pauses':>6} {'cut-ins':>7} "
        f"{'decided: mean p50 p95':>22} {'answer: mean p50 p95':>21}"
    )
    print(header)
    for split in ("tune", "held_out"):
        chosen = [t for t in turns if t.split == split]
        pauses = sum(len(t.speech) - 1 for t in chosen)
        for name, outcomes in results.items():
            picked = [outcomes[t.id] for t in chosen]
            ends = {t.id: t.turn_end for t in chosen}
            cut_ins = sum(len(o.cut_ins) for o in picked)
            decided = [
                o.decided - ends[t.id] for t, o in zip(chosen, picked, strict=True) if o.decided
            ]
            answer = [
                o.answer_ready - ends[t.id]
                for t, o in zip(chosen, picked, strict=True)
                if o.answer_ready
            ]
            missed = sum(1 for o in picked if o.decided is None)
            print(
                f"{name:30} {split:8} {len(chosen):5} {pauses:6} {cut_ins:7}    "
                f"{stats(decided)}      {stats(answer)}"
                + (f"  ({missed} never ended)" if missed else "")
            )
    print()
    print(
        "speculative answers (words + speculate): started on a pause's words before the pause "
        "ended the turn; wasted = the caller went on; head start = how much sooner the LLM "
        "began on the turn that was answered, ms"
    )
    speculative = results["words + speculate"]
    for split in ("tune", "held_out", "all"):
        picked = [speculative[t.id] for t in turns if split in ("all", t.split)]
        started = sum(o.speculations for o in picked)
        wasted = sum(o.wasted for o in picked)
        cut_in = sum(o.at_cut_in for o in picked)
        used = [o.head_start for o in picked if o.head_start is not None]
        print(
            f"  {split:8} {len(picked):3} turns: {started} started, {wasted} wasted, "
            f"{cut_in} answered a cut-in, {len(used)} used at the real end; "
            f"head start mean/p50/p95 {stats(used)}"
        )
    if args.show:
        print()
        for turn in turns:
            for name, outcomes in results.items():
                o = outcomes[turn.id]
                cuts = ", ".join(
                    f"{c - turn.turn_end:+.2f} {t!r}"
                    for c, t in zip(o.cut_ins, o.cut_in_texts, strict=True)
                )
                decided = f"{o.decided - turn.turn_end:+.2f}" if o.decided else "never"
                print(
                    f"{turn.id} {name[:5]} decided {decided} cut-ins [{cuts}] "
                    f"{o.words.value if o.words else '-':10} {o.text!r}"
                )
            print(f"     truth: {turn.text}")


if __name__ == "__main__":
    main()
