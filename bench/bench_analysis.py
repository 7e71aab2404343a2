"""Post-call analysis on the labelled calls of ``tests/data/calls``: per-field accuracy and
analysis time, per model profile (docs/analysis.md, "Figures").

For each profile the analysis model is built as ``callagent serve`` builds it
(``LlamaJsonModel``: a second ``Llama``, one thread, the schema's grammar), loaded before the
clock starts, and each call is analysed as the worker does it (``analyse_call``: an invalid
answer is asked for once more; the callback time resolved with ``dialog/when.py``). Each field
is scored against the labels (``tests/helpers/labelled_calls.py``), for all calls and apart for
the ``tune`` and ``held_out`` splits; ``summary_numbers`` checks that the summary invents no
figure. Times are whole analyses (prompt, answer, retries), p50 / p95.

Run: ``.venv/bin/python bench/bench_analysis.py --profiles ci default [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the labelled calls' loader and scorer

from callagent.dialog.analysis import (  # noqa: E402
    AnalysisFailed,
    JsonModelSettings,
    LlamaJsonModel,
    analyse_call,
    resolve_callback_time,
)
from callagent.modelfiles import resolve_profile  # noqa: E402

from helpers.labelled_calls import (  # noqa: E402
    FIELDS,
    LabelledCall,
    load_all,
    score,
    score_unanalysed,
    unanalysed_outcome,
)

SPLITS = ("all", "tune", "held_out")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def bench_profile(
    profile: str, calls: list[LabelledCall], repeat: int, nice: int | None = None
) -> dict[str, Any]:
    """Analyse every call ``repeat`` times with ``profile``'s model; scores and times.
    ``nice``: the model thread's priority instead of the worker's (19), for a machine where
    other processes compute - at 19 they starve it (seen: load average 15, no answer in 30 min)."""
    paths = resolve_profile(profile, REPO / "models")
    settings = JsonModelSettings() if nice is None else JsonModelSettings(nice=nice)
    model = LlamaJsonModel(paths.llm_path, settings)
    started = time.perf_counter()
    await model.load()
    load_s = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    try:
        for _ in range(repeat):
            for labelled in calls:
                if not labelled.call.caller_spoke:
                    # Nobody answered or nothing was said: the worker asks no model
                    # (docs/analysis.md "The worker"); the call keeps the phone system's outcome.
                    rows.append(
                        {
                            "call": labelled.name,
                            "split": labelled.split,
                            "skipped": True,
                            "scores": score_unanalysed(labelled),
                            "answer": {"outcome": unanalysed_outcome(labelled), "summary": ""},
                            "callback_at": None,
                        }
                    )
                    continue
                began = time.perf_counter()
                try:
                    run = await analyse_call(model, labelled.call)
                except AnalysisFailed as failed:
                    rows.append(
                        {
                            "call": labelled.name,
                            "split": labelled.split,
                            "seconds": time.perf_counter() - began,
                            "failed": str(failed),
                            "scores": {},
                        }
                    )
                    print(f"  {labelled.name}: FAILED {failed}", flush=True)
                    continue
                callback_at = resolve_callback_time(labelled.call, run.result)
                scores = score(labelled, run.result, callback_at)
                rows.append(
                    {
                        "call": labelled.name,
                        "split": labelled.split,
                        "seconds": run.seconds,
                        "tries": len(run.answers),
                        "scores": scores,
                        "answer": msgspec.to_builtins(run.result),
                        "callback_at": callback_at.isoformat() if callback_at else None,
                    }
                )
                wrong = [name for name, ok in scores.items() if not ok]
                print(
                    f"  {labelled.name}: {run.seconds:.1f} s, outcome {run.result.outcome}"
                    + (f", wrong: {', '.join(wrong)}" if wrong else ""),
                    flush=True,
                )
    finally:
        await model.close()
    return {"profile": profile, "model": paths.llm_model, "load_s": load_s, "rows": rows}


def table(result: dict[str, Any]) -> str:
    """The profile's per-field accuracy per split, and its times."""
    rows = result["rows"]
    lines = [
        f"profile {result['profile']} ({result['model']}), model load {result['load_s']:.1f} s",
        "| field | " + " | ".join(SPLITS) + " |",
        "| --- | " + " | ".join("---" for _ in SPLITS) + " |",
    ]
    for name in FIELDS:
        cells = []
        for split in SPLITS:
            chosen = [r for r in rows if split == "all" or r["split"] == split]
            scored = [r["scores"][name] for r in chosen if name in r["scores"]]
            scored += [False for r in chosen if "failed" in r]  # a failed run gets nothing right
            right = sum(scored)
            cells.append(f"{right}/{len(scored)}" if scored else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    failed = sum(1 for r in rows if "failed" in r)
    retried = sum(1 for r in rows if r.get("tries", 1) > 1)
    skipped = sum(1 for r in rows if r.get("skipped"))
    seconds = [r["seconds"] for r in rows if not r.get("skipped")]
    lines.append(
        f"analysis time p50 {percentile(seconds, 0.5):.1f} s, p95 {percentile(seconds, 0.95):.1f} s"
        f" over {len(seconds)} runs; {retried} needed a second answer, {failed} failed;"
        f" {skipped} calls without caller speech not analysed (scored on their live outcome)"
    )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["ci", "default"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every answer and score here")
    parser.add_argument("--nice", type=int, help="the analysis thread's nice (worker: 19)")
    args = parser.parse_args()
    calls = load_all()
    results = []
    for profile in args.profiles:
        print(f"profile {profile}: {len(calls)} calls, load average {os.getloadavg()[0]:.2f}")
        results.append(await bench_profile(profile, calls, args.repeat, args.nice))
        print(f"  load average after: {os.getloadavg()[0]:.2f}")
    for result in results:
        print()
        print(table(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
