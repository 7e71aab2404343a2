"""Compare llama.cpp builds (instruction-set levels) on this machine: which one to ship.

Each build is a llama-cpp-python wheel (``scripts/build_llama.py wheel --level L --out DIR``, or
any wheel, e.g. a ``GGML_NATIVE=ON`` one for comparison). Every wheel is unpacked into its own
folder and measured in its own child process, so one build's library never meets another's, and
a build that traps (SIGILL) is reported as such instead of ending the benchmark. Rounds are
interleaved (A B C A B C ...) so that a busy moment of the shared machine hits every build alike.

Per build, with the given GGUF, one thread (as a call runs it on 2 cores, docs/models.md) and the
~400-token system prompt of ``bench_models.py``:

* prompt tokens/s: the cold system prompt, processed from scratch;
* first token ms: cold (whole prompt) and warm (cached system prompt, a new question);
* decode tokens/s over 48 tokens.

Run::

    .venv/bin/python bench/bench_llama_builds.py --model models/llm/....gguf \\
        native=/tmp/native.whl avx2=/tmp/avx2.whl avx512=/tmp/avx512.whl --rounds 5

Figures are printed as best / median; the table in docs/models.md came from this script.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from bench_models import SYSTEM_PROMPT, COLD_QUESTION, WARM_QUESTIONS
import llama_cpp
from llama_cpp import Llama

llm = Llama(
    model_path=sys.argv[3], n_ctx=2048, n_threads=int(sys.argv[4]),
    n_threads_batch=int(sys.argv[5]) or None, verbose=False,
)

def ask(question):
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    for chunk in llm.create_chat_completion(messages, stream=True, max_tokens=48, temperature=0.0):
        if not chunk["choices"][0]["delta"].get("content"):
            continue
        now = time.perf_counter()
        if count == 0:
            first = now - started
        last = now - started
        count += 1
    rate = (count - 1) / (last - first) if last > first else 0.0
    return first, rate

prompt_tokens = len(llm.tokenize(SYSTEM_PROMPT.encode()))
llm.reset()
cold, rate_cold = ask(COLD_QUESTION)
warm, rate_warm = ask(WARM_QUESTIONS[0])
print(json.dumps({
    "cold_ms": cold * 1000, "warm_ms": warm * 1000,
    "prompt_tok_s": prompt_tokens / cold, "decode_tok_s": max(rate_cold, rate_warm),
    "system_info": llama_cpp.llama_print_system_info().decode(),
}))
"""


def unpack(wheel: Path, into: Path) -> Path:
    """Unzip a wheel: its ``llama_cpp`` package becomes importable from the folder."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    # zipfile drops the execute bits; the shared libraries load without them.
    return into


def measure(folder: Path, model: Path, threads: int, batch: int = 0) -> dict[str, object]:
    """One round of one build, in a child process (``batch`` 0: llama.cpp's default)."""
    command = [sys.executable, "-c", CHILD, str(folder), str(HERE), str(model), str(threads)]
    command.append(str(batch))
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode < 0:
        return {"died": signal.Signals(-done.returncode).name}
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a GGUF file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--batch-threads",
        type=int,
        default=0,
        help="threads for prompt processing (0: llama-cpp-python's default, every core)",
    )
    parser.add_argument("builds", nargs="+", help="NAME=WHEEL")
    args = parser.parse_args(argv)

    results: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {}
        for spec in args.builds:
            name, _, wheel = spec.partition("=")
            folders[name] = unpack(Path(wheel), Path(scratch) / name)
            results[name] = []
        for round_ in range(args.rounds):
            for name, folder in folders.items():
                results[name].append(measure(folder, args.model, args.threads, args.batch_threads))
                print(f"round {round_ + 1} {name}: {results[name][-1]}", file=sys.stderr)

    batch = args.batch_threads or "every core"
    print(f"\nmodel {args.model.name}, decode on {args.threads} thread(s), prompts on {batch}")
    print(f"{args.rounds} rounds, best / median")
    print("| build | prompt tok/s | first token cold ms | first token warm ms | decode tok/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, rounds in results.items():
        good = [r for r in rounds if "cold_ms" in r]
        if not good:
            print(f"| {name} | {rounds[0]} | | | |")
            continue

        def cell(key: str, higher_is_better: bool, rounds: list[dict[str, object]] = good) -> str:
            values = [float(r[key]) for r in rounds]  # type: ignore[arg-type]
            best = max(values) if higher_is_better else min(values)
            return f"{best:.0f} / {statistics.median(values):.0f}"

        print(
            f"| {name} | {cell('prompt_tok_s', True)} | {cell('cold_ms', False)} | "
            f"{cell('warm_ms', False)} | {cell('decode_tok_s', True)} |"
        )
    for name, rounds in results.items():
        info = next((r["system_info"] for r in rounds if "system_info" in r), "")
        print(f"{name}: {info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
