"""System prompt assembly.

The system prompt is the first thing in every LLM request. It is built only from the agent
profile, deterministically, so it is byte-identical across turns and calls: llama.cpp then
reuses its evaluated prefix and the first token comes ~10× sooner (DESIGN.md, known traps).
Anything that changes per call (customer memory, the caller's key presses) goes after it.

After the agent's part comes the fixed description of the in-call actions the model may write
(:data:`~callagent.dialog.actions.ACTION_INSTRUCTIONS`, docs/dialog.md), the same for every
agent; and last, for a call with a purpose (``dialog/purposes.py``), the purpose's objective and
the actions it does not allow. So the prompt is byte-stable per (agent, purpose), and the
prompt without a purpose - the one warmed when an agent's profile is built - is the start of
every purpose's: llama.cpp reuses all of it on calls of any purpose and evaluates only the
purpose's few sentences (docs/dialog.md "Call purposes").
"""

from __future__ import annotations

from callagent.dialog.actions import ACTION_INSTRUCTIONS, ActionKind
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
    identical bytes for identical profiles and purposes, and the general prompt is the start
    of every purpose's."""
    general = f"{build_profile_prompt(profile)}\n\n{ACTION_INSTRUCTIONS}"
    if purpose is None:
        return general
    rules = PURPOSES[purpose]
    text = f"This call is {rules.label}. Your objective on it: {rules.objective}"
    # Enforced in code whatever the model writes (conversation.Conversation); said here so
    # the model does not offer what cannot be done.
    forbidden = [k.value for k in ActionKind if k not in ALWAYS_ALLOWED | rules.allowed]
    if forbidden:
        text += f" Not on this call: {', '.join(forbidden)}."
    return f"{general}\n\n{text}"


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
