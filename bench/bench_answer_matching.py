"""Measure how well the learning loop tells which trained objection answer the agent gave.

The learning loop (docs/learning.md) counts a call under the trained answer whose content words
the agent's turns contain (``callagent.store.services.learning.match_answers``): no model, but
the agent's words are the LLM's, which rephrases what its prompt says. This bench has the real
model answer objections, as in a call (``Conversation.reply``, the system prompt of a profile
carrying one of two answers per objection), and counts how each reply is matched:

* ``carried`` - to the answer the prompt carried (right);
* ``other`` - to the other answer trained for the objection (wrong: a count in the wrong place);
* ``elsewhere`` - to an answer of another objection (wrong);
* ``none`` - to no answer (the call is not counted for the objection: a loss of data, not an
  error).

Replies to caller turns that raise no objection should match nothing (``false``: any match).

Run: ``.venv/bin/python bench/bench_answer_matching.py --profiles ci default``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import msgspec

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import LlamaCppLanguageModel
from callagent.modelfiles.verify import resolve_profile
from callagent.store.services.learning import AnswerVariant, match_answers

# Two answers per objection, as a client would teach them in two sessions.
ANSWERS: dict[str, tuple[str, str]] = {
    "too expensive": (
        "Most customers finance the system and pay less per month than their old electricity bill.",
        "We can start with a smaller system now and add panels later as your budget allows.",
    ),
    "not interested": (
        "No problem at all. May I send you a short brochure by email?",
        "Fair enough. Can I ask what you heat your home with, just so I can note it?",
    ),
    "no time": (
        "I understand. When would be a better time for a two minute call back?",
        "Of course. The free site survey takes only forty five minutes, whenever suits you.",
    ),
    "need to ask my partner": (
        "That makes sense. We can book the survey for a time when you are both at home.",
        "Of course. I can email a summary with prices that you can read together.",
    ),
    "already have a supplier": (
        "Many of our customers switched from their supplier after comparing a free quote.",
        "Solar panels work with any electricity supplier, so you can keep yours.",
    ),
    "roof is not suitable": (
        "Our surveyor checks the roof for free and tells you honestly whether it works.",
        "We also install ground mounted panels in gardens when a roof does not fit.",
    ),
}
OBJECTION_TURNS: dict[str, tuple[str, ...]] = {
    "too expensive": ("That sounds too expensive for us.", "I think the price is too high."),
    "not interested": ("I'm not interested, thanks.", "No, this isn't for me."),
    "no time": ("I really don't have time right now.", "I'm busy at the moment."),
    "need to ask my partner": (
        "I'd need to ask my partner first.",
        "My wife decides these things, I must talk to her.",
    ),
    "already have a supplier": (
        "We already have an electricity supplier.",
        "We're happy with our current energy company.",
    ),
    "roof is not suitable": (
        "I don't think our roof is suitable.",
        "Our roof faces north, it won't work.",
    ),
}
NEUTRAL_TURNS = (
    "What does the site survey involve?",
    "How long is the warranty on the panels?",
    "Who are you calling for again?",
    "Can you tell me what the company does?",
)


def variants() -> dict[str, list[AnswerVariant]]:
    return {
        name: [AnswerVariant(objection=name, text=text) for text in pair]
        for name, pair in ANSWERS.items()
    }


async def reply(llm: LlamaCppLanguageModel, carried: int, caller: str) -> str:
    profile = msgspec.structs.replace(
        DEFAULT_AGENT,
        objection_answers={name: pair[carried] for name, pair in ANSWERS.items()},
    )
    conversation = Conversation(profile, llm)
    return "".join([part async for part in conversation.reply(caller)])


async def measure(profile: str, models_dir: Path, verbose: bool) -> None:
    llm = LlamaCppLanguageModel(resolve_profile(profile, models_dir, verify=False).llm_path)
    table = variants()
    results: Counter[str] = Counter()
    false = 0
    for carried in (0, 1):
        for name, turns in OBJECTION_TURNS.items():
            for caller in turns:
                said = await reply(llm, carried, caller)
                found = match_answers([said], table)
                mine = [v for v in found if v.objection == name]
                if not mine:
                    kind = "elsewhere" if found else "none"
                elif mine[0].text == ANSWERS[name][carried]:
                    kind = "carried"
                else:
                    kind = "other"
                if kind == "none" and found:
                    kind = "elsewhere"
                results[kind] += 1
                if verbose:
                    print(f"  [{profile}] {kind:9} {name:24} {said[:110]!r}", flush=True)
        for caller in NEUTRAL_TURNS:
            said = await reply(llm, carried, caller)
            hit = match_answers([said], table)
            false += bool(hit)
            if verbose:
                print(f"  [{profile}] {'FALSE' if hit else 'ok':9} neutral {said[:110]!r}")
    total = sum(results.values())
    neutral = 2 * len(NEUTRAL_TURNS)
    print(
        f"| {profile} | {total} | "
        + " | ".join(f"{results[k]} ({results[k] / total:.0%})" for k in KINDS)
        + f" | {false} of {neutral} |",
        flush=True,
    )


KINDS = ("carried", "other", "elsewhere", "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["ci", "default"])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    print("| profile | objection replies | " + " | ".join(KINDS) + " | neutral matched |")
    print("| --- | ---: | " + " | ".join("---:" for _ in KINDS) + " | ---: |")
    for profile in args.profiles:
        asyncio.run(measure(profile, args.models_dir, args.verbose))


if __name__ == "__main__":
    main()
