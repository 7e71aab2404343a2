"""The dialog profile of a client's stored agent, built from its training.

docs/telephony.md "Routing" says what goes where; the training data is that of docs/api.md.

:func:`build_agent_profile` is a pure function of the agent, its training sessions and the
client's name: the same inputs give the same :class:`AgentProfile`, and so the same system
prompt bytes, call after call (the LLM's prefix cache depends on it - DESIGN.md "Known traps").
Nothing here depends on the time, on the caller, or on dict ordering that could vary.

The system prompt has to fit a small model's context (2048 tokens by default) with room for
the conversation, so every section is clipped and the whole prompt is kept under
:data:`MAX_PROMPT_CHARS` by dropping the last items of the longest lists first. What is dropped
is deterministic, so the prompt stays byte-stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.prompt import build_profile_prompt
from callagent.store.schemas import AgentView, TrainingView
from callagent.store.services import learning
from callagent.store.states import AgentStatus, TrainingType

MAX_PROMPT_CHARS: Final = 3500
"""About 900 tokens: half a 2048-token context, leaving the rest to the conversation."""

PERSONALITIES: Final[Mapping[str, str]] = {
    "professional": "professional and courteous",
    "friendly": "warm and friendly",
    "enthusiastic": "upbeat and enthusiastic",
    "consultative": "curious, consultative",
    "empathetic": "patient and empathetic",
    "assertive": "confident and direct",
    "casual": "relaxed and casual",
}

_SCRIPT_CHARS = 900
_COMPANY_CHARS = 300
_ITEM_CHARS = 160
_MAX_FACTS = 10
_MAX_OBJECTIONS = 6
_MAX_GOALS = 5
_MAX_TECHNIQUES = 6
_MAX_INSTRUCTIONS = 4


def clip(text: str, limit: int) -> str:
    """``text`` with whitespace collapsed, cut at a word boundary to at most ``limit``
    characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def _unique(items: Iterable[str], limit: int, chars: int = _ITEM_CHARS) -> list[str]:
    """The first ``limit`` distinct items (case-insensitive), each clipped to ``chars``."""
    kept: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = clip(item, chars)
        if text and text.lower() not in seen:
            seen.add(text.lower())
            kept.append(text)
        if len(kept) == limit:
            break
    return kept


def _text(value: Any) -> str:
    """A JSON value from business_info / sales_goals as one line of text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    if isinstance(value, dict):
        return "; ".join(f"{_label(k)}: {_text(v)}" for k, v in sorted(value.items()) if _text(v))
    return ""


def _label(key: str) -> str:
    return key.replace("_", " ").strip()


def _first_text(data: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _template(text: str) -> str:
    """A client's greeting as a format template: only ``{name}`` and ``{company}`` are
    placeholders; any other brace is literal (it would otherwise break ``str.format``)."""
    escaped = text.replace("{", "{{").replace("}", "}}")
    return escaped.replace("{{name}}", "{name}").replace("{{company}}", "{company}")


def _product_facts(trainings: Sequence[TrainingView]) -> list[str]:
    facts: list[str] = []
    for training in trainings:
        details = training.product_details or {}
        name = _text(details.get("name", "")).strip()
        prefix = f"{name}: " if name else ""
        description = _text(details.get("description", "")).strip()
        if description:
            facts.append(prefix + description)
        facts += [f"{prefix}{feature}" for feature in details.get("features", []) or [] if feature]
        pricing = _text(details.get("pricing", "")).strip()
        if pricing:
            facts.append(f"{prefix}Pricing: {pricing}")
        facts += [f"{prefix}Benefit: {b}" for b in details.get("benefits", []) or [] if b]
        if training.training_type == TrainingType.PRODUCT and training.training_content.strip():
            facts.append(training.training_content)
    return _unique(facts, _MAX_FACTS)


def _objections(
    trainings: Sequence[TrainingView], agent: AgentView | None = None
) -> dict[str, str]:
    """One answer per objection. Every answer trained for an objection is kept (oldest first);
    which one the prompt carries is ``learning.choose_answer``'s choice: the newest, unless
    the agent is ``optimizing`` and its calls say another one does better (docs/learning.md)."""
    metrics = agent.performance_metrics if agent is not None else {}
    on = agent is not None and agent.status == AgentStatus.OPTIMIZING
    variants = learning.answer_variants(t.objection_responses for t in trainings)
    answers: dict[str, str] = {}
    for name in sorted(variants):
        chosen = learning.choose_answer(variants[name], metrics, learning=on)
        key = clip(chosen.objection, 40).lower()
        if key:
            answers[key] = clip(chosen.text, _ITEM_CHARS)
    return {k: answers[k] for k in sorted(answers)[:_MAX_OBJECTIONS]}


def _of_type(trainings: Sequence[TrainingView], kind: TrainingType) -> list[str]:
    return [t.training_content for t in trainings if t.training_type == kind and t.training_content]


def build_agent_profile(
    agent: AgentView, trainings: Sequence[TrainingView], client_name: str
) -> AgentProfile:
    """The dialog profile of ``agent`` trained with ``trainings`` (oldest first).

    What comes from where:

    - name, personality: the agent's ``agent_name`` and ``personality_type``;
    - company: ``business_info.company_name`` / ``company`` / ``name``, else the client's name;
    - company_info: ``company`` sessions, then ``business_info.description``;
    - language, purpose, greeting, outbound_greeting, goodbye: ``business_info`` keys of those
      names (purpose also ``sales_goals.purpose`` / ``primary_goal``);
    - script: ``script`` sessions; product_facts: every session's ``product_details`` and the
      ``product`` sessions' text; objection_answers: every session's ``objection_responses``
      (the newest answer to an objection, or the one its calls did best with once it is
      ``optimizing``: docs/learning.md);
    - goals: ``goals`` sessions and the ``sales_goals`` entries; techniques: every session's
      ``sales_techniques`` and the ``techniques`` sessions' text; instructions: every session's
      ``client_instructions``.
    """
    info = agent.business_info or {}
    goals_data = agent.sales_goals or {}
    company = clip(_first_text(info, "company_name", "company", "name") or client_name, 100)
    company_info = [*_of_type(trainings, TrainingType.COMPANY), _first_text(info, "description")]
    goals = _of_type(trainings, TrainingType.GOALS) + [
        f"{_label(key)}: {_text(value)}"
        for key, value in sorted(goals_data.items())
        if key not in ("purpose", "primary_goal") and _text(value)
    ]
    techniques = [
        *(technique for t in trainings for technique in t.sales_techniques),
        *_of_type(trainings, TrainingType.TECHNIQUES),
    ]
    defaults = AgentProfile(name=agent.agent_name or "Alex", company=company or "us")
    purpose = _first_text(goals_data, "purpose", "primary_goal") or _first_text(info, "purpose")
    greeting = _first_text(info, "greeting")
    outbound_greeting = _first_text(info, "outbound_greeting")
    goodbye = _first_text(info, "goodbye")
    profile = AgentProfile(
        name=clip(agent.agent_name, 100) or defaults.name,
        company=defaults.company,
        voice=agent.voice_model,
        personality=PERSONALITIES.get(str(agent.personality_type), defaults.personality),
        language=clip(_first_text(info, "language"), 40) or defaults.language,
        purpose=clip(purpose, 300) or defaults.purpose,
        script=clip("\n".join(_of_type(trainings, TrainingType.SCRIPT)), _SCRIPT_CHARS),
        product_facts=_product_facts(trainings),
        objection_answers=_objections(trainings, agent),
        goals=_unique(goals, _MAX_GOALS),
        company_info=clip(" ".join(c for c in company_info if c), _COMPANY_CHARS),
        techniques=_unique(techniques, _MAX_TECHNIQUES, 100),
        instructions=_unique((t.client_instructions for t in trainings), _MAX_INSTRUCTIONS),
        greeting=_template(clip(greeting, 300)) if greeting else defaults.greeting,
        outbound_greeting=_template(clip(outbound_greeting, 300)) if outbound_greeting else "",
        goodbye=clip(goodbye, 300) if goodbye else defaults.goodbye,
    )
    return fit_prompt(profile)


def fit_prompt(profile: AgentProfile, limit: int = MAX_PROMPT_CHARS) -> AgentProfile:
    """``profile`` trimmed until its part of the system prompt has at most ``limit`` characters
    (the fixed action instructions come on top): the last item of the longest list goes first,
    then the script is shortened."""
    while len(build_profile_prompt(profile)) > limit:
        lists: dict[str, int] = {
            "product_facts": len(profile.product_facts),
            "objection_answers": len(profile.objection_answers),
            "goals": len(profile.goals),
            "techniques": len(profile.techniques),
            "instructions": len(profile.instructions),
        }
        longest = max(lists, key=lambda name: (lists[name], name))
        if lists[longest] > 1:
            if longest == "objection_answers":
                keys = sorted(profile.objection_answers)[:-1]
                trimmed: Any = {k: profile.objection_answers[k] for k in keys}
            else:
                trimmed = list(getattr(profile, longest))[:-1]
            profile = msgspec.structs.replace(profile, **{longest: trimmed})
        elif len(profile.script) > 200:
            profile = msgspec.structs.replace(
                profile, script=clip(profile.script, len(profile.script) // 2)
            )
        elif profile.company_info:
            profile = msgspec.structs.replace(profile, company_info="")
        else:
            break  # nothing left to trim: a very long name or purpose; accept it
    return profile
