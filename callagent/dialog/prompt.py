"""System prompt assembly.

The system prompt is the first thing in every LLM request. It is built only from the agent
profile, deterministically, so it is byte-identical across turns and calls: llama.cpp then
reuses its evaluated prefix and the first token comes ~10× sooner (DESIGN.md, known traps).
Anything that changes per call (customer memory, the caller's key presses) goes after it.

It ends with the fixed description of the in-call actions the model may write
(:data:`~callagent.dialog.actions.ACTION_INSTRUCTIONS`, docs/dialog.md), the same for every
agent.
"""

from __future__ import annotations

from callagent.dialog.actions import ACTION_INSTRUCTIONS
from callagent.dialog.agent_profile import AgentProfile

PHONE_STYLE_RULES = (
    "You are on a live phone call. Your words are turned into speech, so: "
    "answer in one or two short sentences; "
    "never use lists, markdown, emojis or stage directions; "
    "say numbers the way people say them; "
    "ask at most one question at a time; "
    "if you do not know something, say so and offer a callback."
)


def build_system_prompt(profile: AgentProfile) -> str:
    """The agent's system prompt; identical bytes for identical profiles."""
    return f"{build_profile_prompt(profile)}\n\n{ACTION_INSTRUCTIONS}"


def build_profile_prompt(profile: AgentProfile) -> str:
    """The part of the system prompt that comes from the agent's profile (what
    ``profile_builder.fit_prompt`` keeps within its size)."""
    parts = [
        f"You are {profile.name}, a {profile.personality} phone agent for {profile.company}. "
        f"You speak {profile.language}. Your job: {profile.purpose}.",
        PHONE_STYLE_RULES,
    ]
    if profile.company_info.strip():
        parts.append(f"About {profile.company}: {profile.company_info.strip()}")
    if profile.script.strip():
        parts.append(f"Call script: {profile.script.strip()}")
    if profile.product_facts:
        parts.append("Facts you may use:\n" + "\n".join(f"- {f}" for f in profile.product_facts))
    if profile.objection_answers:
        parts.append(
            "If the caller objects:\n"
            + "\n".join(f'- "{k}": {v}' for k, v in sorted(profile.objection_answers.items()))
        )
    if profile.techniques:
        parts.append("Techniques that work: " + " ".join(profile.techniques))
    if profile.goals:
        parts.append("Goals for this call: " + " ".join(profile.goals))
    if profile.instructions:
        parts.append(f"Instructions from {profile.company}: " + " ".join(profile.instructions))
    return "\n\n".join(parts)
