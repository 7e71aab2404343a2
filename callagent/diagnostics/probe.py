"""One engine, exercised once, in a process of its own: the child side of the self-check.

``python -m callagent.diagnostics.probe ENGINE --model PATH ...`` loads one real engine through
the same classes a call uses and makes it do one small piece of real work: the LLM generates a
few tokens, Piper speaks a sentence (written to ``--out``), Whisper transcribes a file. It prints
one JSON line on stdout. A native library that traps (SIGILL from an instruction the CPU cannot
run, docs/models.md "llama.cpp build") kills only this process; the parent
(:mod:`.selfcheck`) sees the signal and says which engine died.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROBE_SENTENCE = "Thank you for calling. How can I help you today?"
"""What Piper speaks and Whisper must recognise: ordinary call words."""


async def probe_llm(model: Path, threads: int) -> dict[str, Any]:
    """Load the GGUF and stream a short answer; report the build's instruction sets."""
    import llama_cpp

    from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings

    llm = LlamaCppLanguageModel(model, LlamaSettings(n_threads=threads, max_tokens=8))
    pieces = [
        piece async for piece in llm.stream([{"role": "user", "content": "Say hello to a caller."}])
    ]
    return {
        "text": "".join(pieces).strip(),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }


async def probe_tts(model: Path, config: Path, out: Path | None) -> dict[str, Any]:
    """Speak :data:`PROBE_SENTENCE`; write it to ``out`` as a wav for the STT probe."""
    from callagent.voice_pipeline.tts import PiperTextToSpeech

    tts = PiperTextToSpeech(model, config)
    pcm = b"".join([chunk async for chunk in tts.synthesize(PROBE_SENTENCE)])
    if out is not None:
        with wave.open(str(out), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(tts.sample_rate)
            wav.writeframes(pcm)
    return {"seconds_of_audio": round(len(pcm) / 2 / tts.sample_rate, 2)}


async def probe_stt(model_dir: Path, audio: Path | None) -> dict[str, Any]:
    """Transcribe ``audio`` (or one second of silence when there is none)."""
    from callagent.voice_pipeline.stt import WhisperSpeechToText

    stt = WhisperSpeechToText(model_dir)
    if audio is None:
        pcm, rate = bytes(16_000 * 2), 16_000
    else:
        with wave.open(str(audio), "rb") as wav:
            pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
    transcript = await stt.transcribe(pcm, rate)
    return {"text": transcript.text}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one probe and print its JSON result; a Python error is reported, not raised."""
    parser = argparse.ArgumentParser(description="callagent engine probe (self-check child)")
    parser.add_argument("engine", choices=("llm", "tts", "stt"))
    parser.add_argument("--model", type=Path, required=True, help="GGUF, .onnx or model folder")
    parser.add_argument("--config", type=Path, help="the Piper voice's .onnx.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="tts: write the speech here")
    parser.add_argument("--audio", type=Path, help="stt: the wav to transcribe")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.engine == "llm":
            result = asyncio.run(probe_llm(args.model, args.threads))
        elif args.engine == "tts":
            config = args.config or args.model.with_name(args.model.name + ".json")
            result = asyncio.run(probe_tts(args.model, config, args.out))
        else:
            result = asyncio.run(probe_stt(args.model, args.audio))
    except Exception as error:
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    result.update(ok=True, seconds=round(time.perf_counter() - started, 2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
