"""Measure the ways a small local model can decide in-call actions: latency and accuracy.

The comparison and the choice it led to are in docs/dialog.md ("In-call actions").

For each labelled caller utterance of ``tests/data/intents.json`` (one caller turn right after
the greeting, the agent ``DEFAULT_AGENT``) and each mechanism, on a warm prefix cache, it
measures the time from the request to the first token, to the first *speakable* token and to
the first clause the voice could speak (``ClauseChunker``), and whether the action taken is
the labelled one:

* ``line`` - the model writes ``ACTION: name(args)`` before its answer
  (``callagent.dialog.actions.ACTION_INSTRUCTIONS``); ``ActionTextFilter`` takes it out;
* ``json`` - the whole reply is a JSON object ``{"action", "args", "say"}`` under a llama.cpp
  grammar built from a JSON schema; the spoken text is the ``say`` string as it streams;
* ``intent`` - the plain reply (no action instructions), then a second, grammar-constrained
  request on the same context (the prefix cache holds the conversation) that classifies the
  caller's turn: it costs nothing before the agent speaks if it runs after the reply, its
  whole duration if it runs before.
* ``rules`` - :mod:`callagent.dialog.intents` alone (no model).

Each model mechanism is also scored together with the rules (what ships: the rules' intents
win). The model runs on one thread, as in a call (docs/models.md).

Run: ``.venv/bin/python bench/bench_actions.py --profiles ci default [--mechanisms ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from callagent.dialog.actions import (
    ACTION_INSTRUCTIONS,
    Action,
    ActionKind,
    ActionTextFilter,
    parse_call,
)
from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.intents import Intent, detect
from callagent.dialog.prompt import build_profile_prompt
from callagent.modelfiles.verify import resolve_profile
from callagent.voice_pipeline.text_chunker import ClauseChunker

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "intents.json"
NAMES = ["none", *(kind.value for kind in ActionKind)]

JSON_INSTRUCTIONS = """\
Answer with one JSON object: {"action": ..., "args": ..., "say": ...}. "action" is one of: \
none, schedule_callback (the caller wants to be called back at another time), \
book_appointment (the caller agrees to a demo, survey or meeting at a time), set_do_not_call \
(the caller wants no more calls), transfer (the caller wants a person), send_information \
(the caller wants information by email, sms or post), set_interest (the caller shows how \
interested they are), end_call (the caller says goodbye). "args" is the time in the caller's \
words, the channel, or the interest level (cold, warm, hot); else "". "say" is what you say \
to the caller. Most replies have the action none."""

JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": NAMES},
        "args": {"type": "string"},
        "say": {"type": "string"},
    },
    "required": ["action", "args", "say"],
}

JSON_SAY_FIRST_INSTRUCTIONS = JSON_INSTRUCTIONS.replace(
    '{"action": ..., "args": ..., "say": ...}', '{"say": ..., "action": ..., "args": ...}'
)
JSON_SAY_FIRST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "say": {"type": "string"},
        "action": {"type": "string", "enum": NAMES},
        "args": {"type": "string"},
    },
    "required": ["say", "action", "args"],
}

LINE_AFTER_INSTRUCTIONS = ACTION_INSTRUCTIONS.replace(
    'begin your reply with one line "ACTION: name(arguments)" and then say your answer',
    'say your answer and then add one last line "ACTION: name(arguments)"',
).replace(
    'You: ACTION: schedule_callback(when="tomorrow at ten", reason="busy")\n'
    "Sure, I'll call you back tomorrow at ten.",
    "You: Sure, I'll call you back tomorrow at ten.\n"
    'ACTION: schedule_callback(when="tomorrow at ten", reason="busy")',
)

CLASSIFY_INSTRUCTION = """\
(Not from the caller: which action does the caller's last message ask for? Answer with JSON \
{"action": ..., "args": ...}. Actions: none, schedule_callback (called back at another \
time), book_appointment (agrees to a demo, survey or meeting at a time), set_do_not_call (no \
more calls), transfer (wants a person), send_information (by email, sms or post), \
set_interest (cold, warm or hot), end_call (says goodbye). "args": the time in the caller's \
words, the channel or the level; else "".)"""

CLASSIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": NAMES},
        "args": {"type": "string"},
    },
    "required": ["action", "args"],
}

RULE_ACTIONS = {
    Intent.DO_NOT_CALL: ActionKind.SET_DO_NOT_CALL,
    Intent.TRANSFER_REQUEST: ActionKind.TRANSFER,
    Intent.FAREWELL: ActionKind.END_CALL,
}


@dataclass
class Sample:
    """One utterance under one mechanism."""

    id: str
    split: str
    expect: str | None
    also_ok: list[str]
    when: str
    actions: list[Action] = field(default_factory=list)
    rule_actions: list[Action] = field(default_factory=list)
    first_token_ms: float | None = None
    first_speech_ms: float | None = None
    first_clause_ms: float | None = None
    action_ms: float | None = None
    """When the first action was parsed out (the agent's confirmation can start then)."""
    total_ms: float = 0.0
    extra_ms: float = 0.0
    """The classification request of ``intent``."""
    said: str = ""
    raw: str = ""
    leaked: bool = False


def correct(sample: Sample, actions: list[Action]) -> bool:
    """The labelled action was taken and nothing that is wrong besides it."""
    kinds = {a.kind.value for a in actions}
    allowed = {*sample.also_ok, *([sample.expect] if sample.expect else [])}
    if sample.expect is not None and sample.expect not in kinds:
        return False
    return kinds <= allowed


def when_right(sample: Sample, actions: list[Action]) -> bool | None:
    """For a callback or appointment: its time carries the caller's words (None: no time)."""
    if not sample.when:
        return None
    words = {w.lower().strip(".,") for w in sample.when.split()} - {"at", "in", "the"}
    for action in actions:
        said = action.get("when").lower()
        if action.kind.value == sample.expect and all(w in said for w in words):
            return True
    return False


def rule_actions(text: str) -> list[Action]:
    return [
        Action.make(RULE_ACTIONS[m.intent], source="rule")
        for m in detect(text)
        if m.intent in RULE_ACTIONS
    ]


def combined(sample: Sample) -> list[Action]:
    """Rules win: a rule's action replaces the model's; the model adds the rest."""
    if sample.rule_actions:
        return sample.rule_actions
    return sample.actions


class Bench:
    def __init__(self, model_path: Path, max_tokens: int) -> None:
        from llama_cpp import Llama

        self.llama = Llama(
            model_path=str(model_path), n_ctx=2048, n_threads=1, seed=7, verbose=False
        )
        self.max_tokens = max_tokens
        self.base = build_profile_prompt(DEFAULT_AGENT)

    def _stream(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str]:
        kwargs: dict[str, Any] = {}
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        chunks: Any = self.llama.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            max_tokens=max_tokens or self.max_tokens,
            temperature=0.4,
            top_p=0.9,
            repeat_penalty=1.1,
            **kwargs,
        )
        for chunk in chunks:
            content = chunk["choices"][0]["delta"].get("content")
            if content:
                yield content

    def warm(self, system: str) -> None:
        for _ in self._stream(
            [{"role": "system", "content": system}, {"role": "user", "content": "Hello."}],
            max_tokens=2,
        ):
            pass

    def line(self, text: str, sample: Sample) -> None:
        system = self.base + "\n\n" + ACTION_INSTRUCTIONS
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        filt = ActionTextFilter()
        start = time.perf_counter()

        def push(delta: str) -> str:
            out = filt.push(delta)
            if filt.actions and sample.action_ms is None:
                sample.action_ms = (time.perf_counter() - start) * 1000
            return out

        self._spoken(self._stream(messages), push, filt.flush, sample)
        sample.actions = list(filt.actions)

    def line_after(self, text: str, sample: Sample) -> None:
        system = self.base + "\n\n" + LINE_AFTER_INSTRUCTIONS
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        filt = ActionTextFilter()
        self._spoken(self._stream(messages), filt.push, filt.flush, sample)
        sample.actions = list(filt.actions)

    def json(self, text: str, sample: Sample) -> None:
        system = self.base + "\n\n" + JSON_INSTRUCTIONS
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        extractor = SayExtractor()
        self._spoken(
            self._stream(messages, JSON_SCHEMA, self.max_tokens + 30),
            extractor.push,
            lambda: "",
            sample,
        )
        sample.actions = extractor.actions()

    def json_say_first(self, text: str, sample: Sample) -> None:
        system = self.base + "\n\n" + JSON_SAY_FIRST_INSTRUCTIONS
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        extractor = SayExtractor()
        self._spoken(
            self._stream(messages, JSON_SAY_FIRST_SCHEMA, self.max_tokens + 30),
            extractor.push,
            lambda: "",
            sample,
        )
        sample.actions = extractor.actions()

    def plain(self, text: str, sample: Sample) -> None:
        """No actions at all: the baseline the others are compared with."""
        messages = [{"role": "system", "content": self.base}, {"role": "user", "content": text}]
        self._spoken(self._stream(messages), lambda d: d, lambda: "", sample)

    def intent(self, text: str, sample: Sample) -> None:
        messages = [{"role": "system", "content": self.base}, {"role": "user", "content": text}]
        self._spoken(self._stream(messages), lambda d: d, lambda: "", sample)
        start = time.perf_counter()
        raw = "".join(
            self._stream(
                [
                    *messages,
                    {"role": "assistant", "content": sample.said},
                    {"role": "user", "content": CLASSIFY_INSTRUCTION},
                ],
                CLASSIFY_SCHEMA,
                40,
            )
        )
        sample.extra_ms = (time.perf_counter() - start) * 1000
        sample.actions = from_json(raw)

    def _spoken(self, deltas: Iterator[str], push: Any, flush: Any, sample: Sample) -> None:
        chunker = ClauseChunker()
        start = time.perf_counter()
        said = ""

        def note(piece: str) -> None:
            nonlocal said
            now = (time.perf_counter() - start) * 1000
            if piece.strip() and sample.first_speech_ms is None:
                sample.first_speech_ms = now
            said += piece
            if chunker.push(piece) and sample.first_clause_ms is None:
                sample.first_clause_ms = now

        for delta in deltas:
            if sample.first_token_ms is None:
                sample.first_token_ms = (time.perf_counter() - start) * 1000
            sample.raw += delta
            note(push(delta))
        note(flush())
        if sample.first_clause_ms is None and said.strip():
            sample.first_clause_ms = (time.perf_counter() - start) * 1000
        sample.total_ms = (time.perf_counter() - start) * 1000
        sample.said = " ".join(said.split())
        lowered = sample.said.lower()
        sample.leaked = any(s in lowered for s in ("action", "_", "(", "{", '"say"'))


class SayExtractor:
    """The ``say`` string of a streamed JSON reply, as it arrives; the rest parsed at the end."""

    def __init__(self) -> None:
        self.raw = ""
        self._emitted = 0

    def push(self, delta: str) -> str:
        self.raw += delta
        key = self.raw.find('"say"')
        if key < 0:
            return ""
        colon = self.raw.find('"', self.raw.find(":", key) + 1)
        if colon < 0:
            return ""
        body = self.raw[colon + 1 :]
        out = []
        i = 0
        while i < len(body):
            c = body[i]
            if c == "\\":
                if i + 1 >= len(body):
                    break
                out.append({"n": " ", "t": " "}.get(body[i + 1], body[i + 1]))
                i += 2
                continue
            if c == '"':
                break
            out.append(c)
            i += 1
        text = "".join(out)
        new, self._emitted = text[self._emitted :], len(text)
        return new

    def actions(self) -> list[Action]:
        return from_json(self.raw)


def from_json(raw: str) -> list[Action]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return []
    name = str(data.get("action", "none"))
    if name == "none":
        return []
    arg = str(data.get("args", ""))
    action = parse_call(name, json.dumps(arg) if arg else "")
    return [action] if action is not None else []


def audible(sample: Sample) -> float | None:
    """When the caller hears something: the action's confirmation can start once the action
    line is parsed; otherwise the first clause of the model's words."""
    return sample.action_ms if sample.action_ms is not None else sample.first_clause_ms


def p50(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(profile: str, mechanism: str, samples: list[Sample]) -> dict[str, Any]:
    row: dict[str, Any] = {"profile": profile, "mechanism": mechanism}
    for split in ("tune", "holdout"):
        part = [s for s in samples if s.split == split]
        row[f"{split}_model"] = sum(correct(s, s.actions) for s in part)
        row[f"{split}_with_rules"] = sum(correct(s, combined(s)) for s in part)
        row[f"{split}_n"] = len(part)
        whens = [when_right(s, s.actions) for s in part]
        row[f"{split}_when"] = (
            f"{sum(w is True for w in whens)}/{sum(w is not None for w in whens)}"
        )
    row["first_token_p50"] = p50([s.first_token_ms for s in samples])
    row["first_speech_p50"] = p50([s.first_speech_ms for s in samples])
    row["first_clause_p50"] = p50([s.first_clause_ms for s in samples])
    row["action_p50"] = p50([s.action_ms for s in samples])
    # What the caller waits for: the first clause of the model's words, or - on a turn that
    # took an action - the action line, after which a fixed confirmation is spoken.
    row["first_audible_p50"] = p50([audible(s) for s in samples])
    row["extra_p50"] = p50([s.extra_ms for s in samples]) if mechanism == "intent" else 0.0
    row["leaks"] = sum(s.leaked for s in samples)
    dnc = [s for s in samples if s.expect == "set_do_not_call"]
    caught = sum(any(a.kind is ActionKind.SET_DO_NOT_CALL for a in s.actions) for s in dnc)
    row["dnc_recall_model"] = f"{caught}/{len(dnc)}"
    others = [s for s in samples if s.expect != "set_do_not_call"]
    row["dnc_false_pos_model"] = sum(
        any(a.kind is ActionKind.SET_DO_NOT_CALL for a in s.actions) for s in others
    )
    return row


COLUMNS = (
    "profile",
    "mechanism",
    "tune: model / +rules",
    "holdout: model / +rules",
    "when (tune, holdout)",
    "DNC recall / false pos. (model)",
    "first token",
    "first speech",
    "first clause",
    "action parsed",
    "first audible",
    "added p50",
    "extra after reply",
    "leaks",
)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as the markdown table of docs/dialog.md (times: p50 in ms)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in rows:
        cells = [
            r["profile"],
            r["mechanism"],
            f"{r['tune_model']}/{r['tune_n']} / {r['tune_with_rules']}/{r['tune_n']}",
            f"{r['holdout_model']}/{r['holdout_n']} / {r['holdout_with_rules']}/{r['holdout_n']}",
            f"{r['tune_when']}, {r['holdout_when']}",
            f"{r['dnc_recall_model']} / {r['dnc_false_pos_model']}",
            *(
                fmt(r[key])
                for key in (
                    "first_token_p50",
                    "first_speech_p50",
                    "first_clause_p50",
                    "action_p50",
                    "first_audible_p50",
                    "added_p50",
                    "extra_p50",
                )
            ),
            str(r["leaks"]),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def measure(
    profile: str,
    mechanisms: list[str],
    data: list[dict[str, Any]],
    models_dir: Path,
    max_tokens: int,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """One row per mechanism for ``profile`` over the utterances ``data`` (the items of
    ``intents.json``); a row's ``added_p50`` is against ``plain``, so list ``plain`` before
    the mechanisms it is wanted for. Also used by ``bench/bench_evaluation.py``."""
    rows: list[dict[str, Any]] = []
    bench = None
    baseline: dict[str, float] = {}
    for mechanism in mechanisms:
        samples = []
        if mechanism != "rules" and bench is None:
            bench = Bench(
                resolve_profile(profile, models_dir, verify=False).llm_path,
                max_tokens,
            )
        if bench is not None and mechanism != "rules":
            system = (
                bench.base
                + "\n\n"
                + {
                    "line": ACTION_INSTRUCTIONS,
                    "line_after": LINE_AFTER_INSTRUCTIONS,
                    "json": JSON_INSTRUCTIONS,
                    "json_say_first": JSON_SAY_FIRST_INSTRUCTIONS,
                }.get(mechanism, "")
            )
            bench.warm(system.rstrip())
        for item in data:
            sample = Sample(
                item["id"],
                item["split"],
                item["expect"],
                item.get("also_ok", []),
                item.get("when", ""),
            )
            sample.rule_actions = rule_actions(item["text"])
            if mechanism == "rules":
                sample.actions = sample.rule_actions
            else:
                assert bench is not None
                getattr(bench, mechanism)(item["text"], sample)
            samples.append(sample)
            if verbose:
                ok = "ok " if correct(sample, sample.actions) else "BAD"
                taken = [str(a) for a in sample.actions]
                print(
                    f"  [{profile}/{mechanism}] {ok} {sample.id:30} {taken} "
                    f"clause {fmt(sample.first_clause_ms)} ms "
                    f"extra {fmt(sample.extra_ms)} | {sample.raw[:140]!r}",
                    flush=True,
                )
        row = report(profile if mechanism != "rules" else "-", mechanism, samples)
        if mechanism == "plain":
            baseline = {s.id: s.first_clause_ms for s in samples if s.first_clause_ms}
        # What the mechanism adds to voice-to-voice: the caller's wait for the first words
        # (or the action's confirmation) against the plain reply to the same turn.
        added = [
            audible(s) - baseline[s.id]
            for s in samples
            if audible(s) is not None and s.id in baseline
        ]
        row["added_p50"] = statistics.median(added) if added else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", nargs="+", default=["ci", "default"])
    parser.add_argument(
        "--mechanisms",
        nargs="+",
        default=["rules", "plain", "line", "line_after", "json", "json_say_first", "intent"],
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--max-tokens", type=int, default=80)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    data = json.loads(DATA.read_text())["utterances"]
    rows = []
    for profile in args.profiles:
        rows += measure(
            profile, args.mechanisms, data, args.models_dir, args.max_tokens, args.verbose
        )
    print()
    print(table(rows))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
