"""The labelled evaluation of the agent: per model profile, per field, on the labelled calls of
``tests/data/calls`` (all / tune / held_out), against the targets of docs/evaluation.md.

Three parts, each reusing the bench that measures it:

* ``incall`` - each labelled call is replayed through the product's ``Conversation`` (the rule
  backstop, then the model's action line, ``dialog/conversation.py``) with the profile's model
  as a call runs it (``LlamaCppLanguageModel``, one thread): the caller's turns are the
  labelled ones, the agent's are whatever the model says; the actions taken go to an
  ``ActionLog`` on the call's clock, in the customer's zone and calling window
  (``tests/helpers/call_replay.py``, shared with the CI slice). Scored: the
  do-not-call (recall, false positives), the hand-over, the callback or appointment time to the
  minute, and "are you a robot?" heard by the rules. The rules alone (no model) are scored too:
  what holds whatever the model does.
* ``analysis`` - the post-call analysis as the worker runs it (``bench_analysis.bench_profile``):
  outcome, callback time, do-not-call, hand-over, interest level, summary faithfulness (no
  number, date or name the call did not say: ``labelled_calls.invented_facts``).
* ``latency`` - what the in-call action mechanism adds to voice-to-voice: ``bench_actions``'
  ``plain`` against ``line`` on the labelled utterances (``added p50``).

Run: ``.venv/bin/python bench/bench_evaluation.py --profiles ci default
[--parts incall analysis latency] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the labelled calls' loader and scorer
sys.path.insert(0, str(REPO / "bench"))  # the benches this one reuses

import bench_actions  # noqa: E402
import bench_analysis  # noqa: E402

from callagent.dialog.llm import LlamaCppLanguageModel  # noqa: E402
from callagent.modelfiles import resolve_profile  # noqa: E402

from helpers.call_replay import InCallRun, incall_scores, replay, rules_only  # noqa: E402
from helpers.labelled_calls import LabelledCall, load_all  # noqa: E402

SPLITS = ("all", "tune", "held_out")
TARGETS = {
    "outcome": "≥ 90 %",
    "callback time": "≥ 90 %",
    "do-not-call recall": "100 %",
    "do-not-call false positives": "≤ 2 %",
    "added p50": "≤ 100 ms",
}


async def bench_incall(profile: str, calls: list[LabelledCall]) -> dict[str, Any]:
    """Every call replayed on ``profile``'s live model."""
    paths = resolve_profile(profile, REPO / "models")
    llm = LlamaCppLanguageModel(paths.llm_path)
    rows = []
    for labelled in calls:
        run = await replay(llm, labelled)
        scores = incall_scores(labelled, run)
        wrong = [name for name, ok in scores.items() if ok is False]
        print(
            f"  [{profile} in-call] {labelled.name}: {run.seconds:.1f} s"
            + (f", wrong: {', '.join(wrong)}" if wrong else ""),
            flush=True,
        )
        rows.append(_incall_row(labelled, run, scores))
    return {"profile": profile, "model": paths.llm_model, "rows": rows}


def _incall_row(
    labelled: LabelledCall, run: InCallRun, scores: dict[str, bool | None]
) -> dict[str, Any]:
    return {
        "call": labelled.name,
        "split": labelled.split,
        "want_dnc": labelled.in_call.do_not_call,
        "want_transfer": labelled.in_call.transfer,
        "dnc": run.dnc,
        "transfer": run.transfer,
        "callback_at": run.callback_at.isoformat() if run.callback_at else None,
        "appointment_at": run.appointment_at.isoformat() if run.appointment_at else None,
        "scores": scores,
        "said": run.said,
        "seconds": run.seconds,
    }


def bench_rules(calls: list[LabelledCall]) -> dict[str, Any]:
    """The rule backstop alone (no model): the in-call floor."""
    rows = []
    for labelled in calls:
        run = rules_only(labelled)
        scores = incall_scores(labelled, run)
        scores["time"] = scores["no_spurious_time"] = None  # the rules take no timed action
        rows.append(_incall_row(labelled, run, scores))
    return {"profile": "rules", "model": "-", "rows": rows}


# --- the tables -------------------------------------------------------------------------------


def _chosen(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    return [r for r in rows if split == "all" or r["split"] == split]


def _ratio(right: int, total: int) -> str:
    return f"{right}/{total} ({100 * right / total:.0f} %)" if total else "-"


def _field(rows: list[dict[str, Any]], name: str) -> tuple[list[str], list[str]]:
    """Per split a cell ``right/scored``; and the calls that got it wrong (all splits)."""
    cells = []
    for split in SPLITS:
        scored = [r["scores"].get(name) for r in _chosen(rows, split)]
        scored = [s for s in scored if s is not None]
        cells.append(_ratio(sum(scored), len(scored)))
    wrong = [r["call"] for r in rows if r["scores"].get(name) is False]
    return cells, wrong


def _detection(
    rows: list[dict[str, Any]], want: Callable[[dict[str, Any]], bool], got: Callable[..., bool]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Recall and false-positive cells per split, and the missed and false calls."""
    recall, false_pos = [], []
    for split in SPLITS:
        chosen = _chosen(rows, split)
        positives = [r for r in chosen if want(r)]
        negatives = [r for r in chosen if not want(r)]
        recall.append(_ratio(sum(got(r) for r in positives), len(positives)))
        false_pos.append(_ratio(sum(got(r) for r in negatives), len(negatives)))
    missed = [r["call"] for r in rows if want(r) and not got(r)]
    false = [r["call"] for r in rows if not want(r) and got(r)]
    return recall, false_pos, missed, false


def _line(name: str, cells: list[str], target: str = "", wrong: list[str] | None = None) -> str:
    listed = ", ".join(wrong or []) or ""
    return f"| {name} | " + " | ".join(cells) + f" | {target} | {listed} |"


def _head(title: str) -> list[str]:
    return [
        title,
        "",
        "| field | all | tune | held out | target | wrong (call ids) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]


def analysis_table(result: dict[str, Any], expected: dict[str, dict[str, Any]]) -> str:
    """The post-call analysis's fields, as docs/evaluation.md shows them."""
    rows = result["rows"]
    for row in rows:  # a failed analysis gets nothing right
        if "failed" in row:
            row["answer"] = {"outcome": "", "summary": ""}
    lines = _head(f"Post-call analysis, `{result['profile']}` ({result['model']})")
    cells, wrong = _field(rows, "outcome")
    lines.append(_line("outcome", cells, TARGETS["outcome"], wrong))
    cells, wrong = _field(rows, "callback_at")
    lines.append(_line("callback time (to the minute)", cells, TARGETS["callback time"], wrong))

    def dnc_wanted(r: dict[str, Any]) -> bool:
        return bool(expected[r["call"]].get("do_not_call"))

    recall, false_pos, missed, false = _detection(
        rows, dnc_wanted, lambda r: r["answer"].get("outcome") == "do_not_call"
    )
    lines.append(_line("do-not-call recall", recall, TARGETS["do-not-call recall"], missed))
    lines.append(
        _line(
            "do-not-call false positives", false_pos, TARGETS["do-not-call false positives"], false
        )
    )
    recall, false_pos, missed, false = _detection(
        rows,
        lambda r: expected[r["call"]]["outcome"] == "transferred",
        lambda r: r["answer"].get("outcome") == "transferred",
    )
    lines.append(_line("transfer recall", recall, "", missed))
    lines.append(_line("transfer false positives", false_pos, "", false))
    for name, label in (
        ("interest_level", "interest level"),
        ("callback_requested", "callback requested"),
        ("sentiment", "sentiment"),
        ("summary_faithful", "summary invents nothing (numbers, dates, names)"),
        ("summary_numbers", "summary invents no number"),
    ):
        cells, wrong = _field(rows, name)
        lines.append(_line(label, cells, "", wrong))
    seconds = [r["seconds"] for r in rows if not r.get("skipped")]
    failed = sum(1 for r in rows if "failed" in r)
    lines.append("")
    lines.append(
        f"Analysis time p50 {bench_analysis.percentile(seconds, 0.5):.1f} s, "
        f"p95 {bench_analysis.percentile(seconds, 0.95):.1f} s over {len(seconds)} analyses; "
        f"{failed} failed; {len(rows) - len(seconds)} calls without caller speech not analysed."
    )
    return "\n".join(lines)


def incall_table(result: dict[str, Any]) -> str:
    """The in-call actions' fields, as docs/evaluation.md shows them."""
    rows = result["rows"]
    title = (
        "In-call, the rule backstop alone (no model)"
        if result["profile"] == "rules"
        else f"In-call actions, `{result['profile']}` ({result['model']}), rules + model"
    )
    lines = _head(title)
    recall, false_pos, missed, false = _detection(rows, lambda r: r["want_dnc"], lambda r: r["dnc"])
    lines.append(_line("do-not-call recall", recall, TARGETS["do-not-call recall"], missed))
    lines.append(
        _line(
            "do-not-call false positives", false_pos, TARGETS["do-not-call false positives"], false
        )
    )
    recall, false_pos, missed, false = _detection(
        rows, lambda r: r["want_transfer"], lambda r: r["transfer"]
    )
    lines.append(_line("transfer recall", recall, "", missed))
    lines.append(_line("transfer false positives", false_pos, "", false))
    for name, label, target in (
        ("time", "callback / appointment time (to the minute)", TARGETS["callback time"]),
        ("no_spurious_time", "no callback or appointment when none was asked", ""),
        ("ai_rule", '"are you a robot?" heard', ""),
    ):
        cells, wrong = _field(rows, name)
        if any(c != "-" for c in cells):
            lines.append(_line(label, cells, target, wrong))
    seconds = [r["seconds"] for r in rows if r["seconds"]]
    if seconds:
        lines.append("")
        lines.append(
            f"Replay time per call p50 {bench_analysis.percentile(seconds, 0.5):.1f} s "
            f"(all the caller's turns, the model's replies included)."
        )
    return "\n".join(lines)


def latency_table(profile: str, rows: list[dict[str, Any]]) -> str:
    """What the action line adds to voice-to-voice (``bench_actions``: ``line`` vs ``plain``)."""
    by = {r["mechanism"]: r for r in rows}
    line, plain = by["line"], by["plain"]
    return "\n".join(
        [
            f"Voice-to-voice, `{profile}` (bench_actions, {line['tune_n'] + line['holdout_n']}"
            " labelled caller turns, warm prefix cache; ms, p50)",
            "",
            "| plain: first clause | action line: first audible | added p50 | target |",
            "| --- | --- | --- | --- |",
            f"| {bench_actions.fmt(plain['first_clause_p50'])} "
            f"| {bench_actions.fmt(line['first_audible_p50'])} "
            f"| {bench_actions.fmt(line['added_p50'])} | {TARGETS['added p50']} |",
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["ci", "default"])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["incall", "analysis", "latency"],
        choices=["incall", "analysis", "latency"],
    )
    parser.add_argument("--calls", nargs="*", help="only these call ids")
    parser.add_argument("--json", type=Path, help="write every answer and score here")
    parser.add_argument(
        "--nice", type=int, help="the analysis thread's nice (worker: 19; see bench_analysis)"
    )
    args = parser.parse_args()
    calls = load_all()
    if args.calls:  # in the order given: on a busy machine the first ones finish first
        by_name = {c.name: c for c in calls}
        unknown = [name for name in args.calls if name not in by_name]
        if unknown:
            parser.error(f"no labelled call named {', '.join(unknown)}")
        calls = [by_name[name] for name in args.calls]
    expected = {c.name: c.expected for c in calls}
    tune = sum(c.split == "tune" for c in calls)
    print(
        f"{len(calls)} labelled calls ({tune} tune, {len(calls) - tune} held out), "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    tables: list[str] = []
    dump: dict[str, Any] = {}
    if "incall" in args.parts:
        rules = bench_rules(calls)
        tables.append(incall_table(rules))
        dump["rules"] = rules
    for profile in args.profiles:
        if "incall" in args.parts:
            result = await bench_incall(profile, calls)
            tables.append(incall_table(result))
            dump[f"incall/{profile}"] = result
        if "analysis" in args.parts:
            result = await bench_analysis.bench_profile(profile, calls, 1, args.nice)
            tables.append(analysis_table(result, expected))
            dump[f"analysis/{profile}"] = result
        if "latency" in args.parts:
            data = json.loads(bench_actions.DATA.read_text())["utterances"]
            rows = bench_actions.measure(profile, ["plain", "line"], data, REPO / "models", 80)
            tables.append(latency_table(profile, rows))
            dump[f"latency/{profile}"] = rows
        print(f"  load average after {profile}: {os.getloadavg()[0]:.2f}", flush=True)
    print()
    print("\n\n".join(tables))
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1, default=str))


if __name__ == "__main__":
    asyncio.run(main())
