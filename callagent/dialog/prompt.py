"""System prompt assembly.

The system prompt is the first thing in every LLM request. It is built only from the agent
profile, deterministically, so it is byte-identical across turns and calls: llama.cpp then
reuses its evaluated prefix and the first token comes ~10× sooner (DESIGN.md, known traps).
Anything that changes per call (customer memory, the caller's key presses) goes after it.

After the agent's part comes, for a call with a purpose (``dialog/purposes.py``), the purpose's
objective, and last the fixed description of the in-call actions the model may write
(:func:`~callagent.dialog.actions.action_instructions`, docs/dialog.md) - only the ones the
purpose allows. So the prompt is byte-stable per (agent, purpose), and every purpose's prompt
starts with the same agent part: llama.cpp reuses that prefix across calls of any purpose.
"""

from __future__ import annotations

from callagent.dialog.actions import ALL_ACTIONS, action_instructions
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.purposes import ALWAYS_ALLOWED, PURPOSES, CallPurpose

PHONE_STYLE_RULES = (
    "You are on a live phone call. Your words are turned into speech, so: "
    "answer in one or two short sentences; "
    "never use lists, markdown, emojis or stage directions; "
    "say numbers the way people say them; "
    "ask at most one question at a time; "
    "if you do not know something, say so and offer a callback."
)

HONESTY_RULES = (
    "You are an AI assistant, not a human: if asked, say so, and never claim to be a person. "
    "Never say goodbye or end the conversation yourself; the caller decides when it ends."
)


def build_system_prompt(profile: AgentProfile, purpose: CallPurpose | None = None) -> str:
    """The agent's system prompt for calls of ``purpose`` (None: the agent's general job);
    identical bytes for identical profiles and purposes."""
    if purpose is None:
        return f"{build_profile_prompt(profile)}\n\n{action_instructions()}"
    rules = PURPOSES[purpose]
    allowed = frozenset(k for k in ALL_ACTIONS if k in ALWAYS_ALLOWED or k in rules.allowed)
    return (
        f"{build_profile_prompt(profile)}\n\n"
        f"This call is {rules.label}. Your objective on it: {rules.objective}\n\n"
        f"{action_instructions(allowed)}"
    )


def build_profile_prompt(profile: AgentProfile) -> str:
    """The part of the system prompt that comes from the agent's profile (what
    ``profile_builder.fit_prompt`` keeps within its size)."""
    parts = [
        f"You are {profile.name}, a {profile.personality} phone agent for {profile.company}. "
        f"You speak {profile.language}. Your job: {profile.purpose}.",
        PHONE_STYLE_RULES,
        HONESTY_RULES,
    ]
    if profile.company_info.strip():
        parts.append(f"About {profile.company}: {profile.company_info.strip()}")
    if profile.value_proposition.strip():
        parts.append(f"Why customers choose {profile.company}: {profile.value_proposition.strip()}")
    if profile.script.strip():
        parts.append(f"Call script: {profile.script.strip()}")
    if profile.product_facts:
        parts.append(
            "Facts (when the caller asks about these, answer with them; never make up other "
            "prices or figures):\n" + "\n".join(f"- {f}" for f in profile.product_facts)
        )
    if profile.objection_answers:
        parts.append(
            "When the caller raises one of these objections, give this answer:\n"
            + "\n".join(f'- "{k}": {v}' for k, v in sorted(profile.objection_answers.items()))
        )
    if profile.techniques:
        parts.append("Techniques that work: " + " ".join(profile.techniques))
    if profile.goals:
        parts.append("Goals for this call: " + " ".join(profile.goals))
    if profile.instructions:
        parts.append(f"Instructions from {profile.company}: " + " ".join(profile.instructions))
    return "\n\n".join(parts)
