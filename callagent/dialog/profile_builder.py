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

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

from callagent.dialog.agent_profile import AI_WORDS, AgentProfile, admits_ai
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
_COMPANY_CHARS = 500
_VALUE_CHARS = 240
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
    placeholders, and the bracket ones of sales scripts (``[AGENT_NAME]``, ``[COMPANY]``,
    ``[CUSTOMER_NAME]`` → the customer's name on a call the agent placed, else nothing:
    :func:`fill_placeholders`); any other brace is literal (it would otherwise break
    ``str.format``)."""
    escaped = text.replace("{", "{{").replace("}", "}}")
    escaped = escaped.replace("{{name}}", "{name}").replace("{{company}}", "{company}")
    return fill_placeholders(escaped, "{name}", "{company}", "{customer}")


# Bracket placeholders of sales scripts (docs/dialog.md "What the agent is taught"). Which
# name a bare [NAME] means is read from its place: after "this is", "my name is", "I'm" it is
# the agent's ("Hi, this is [NAME] from [COMPANY]"), anywhere else the customer's ("Hi [NAME],
# ..."), unless the script also names the agent with [AGENT_NAME] - then it is the customer's.
_PLACEHOLDER = re.compile(r"\[\s*([A-Za-z][A-Za-z _'-]{0,30}?)\s*\]")
_AGENT_KEYS: Final = frozenset(
    {
        "agent",
        "agent name",
        "agents name",
        "your name",
        "rep",
        "rep name",
        "my name",
        "sales rep",
        "representative",
        "caller name",
        "assistant name",
    }
)
_COMPANY_KEYS: Final = frozenset(
    {"company", "company name", "business", "business name", "our company", "brand"}
)
_CUSTOMER_KEYS: Final = frozenset(
    {
        "customer",
        "customer name",
        "customer first name",
        "first name",
        "client name",
        "prospect",
        "prospect name",
        "lead name",
        "contact name",
        "their name",
        "caller",
        "customer's name",
        "full name",
    }
)
_SELF_INTRODUCTION = re.compile(r"(?:this is|my name is|i'm|i am|it's)\s*$", re.IGNORECASE)


def _placeholder_key(raw: str) -> str:
    return " ".join(raw.replace("_", " ").replace("-", " ").lower().split())


def fill_placeholders(text: str, agent: str, company: str, customer: str) -> str:
    """``text`` with the bracket placeholders a sales script uses filled in: ``[AGENT_NAME]``
    (and ``[YOUR_NAME]``, ``[REP]``…) → ``agent``, ``[COMPANY]`` (``[COMPANY_NAME]``,
    ``[BUSINESS]``) → ``company``, ``[CUSTOMER_NAME]`` (``[FIRST_NAME]``, ``[PROSPECT]``…) →
    ``customer``, ``[NAME]`` by its place (see above). Other brackets stay as written."""
    names_agent = any(
        _placeholder_key(m.group(1)) in _AGENT_KEYS for m in _PLACEHOLDER.finditer(text)
    )

    def replace(match: re.Match[str]) -> str:
        key = _placeholder_key(match.group(1))
        if key in _AGENT_KEYS:
            return agent
        if key in _COMPANY_KEYS:
            return company
        if key in _CUSTOMER_KEYS:
            return customer
        if key == "name":
            before = text[: match.start()]
            if not names_agent and _SELF_INTRODUCTION.search(before):
                return agent
            return customer
        return match.group()

    return _PLACEHOLDER.sub(replace, text)


CUSTOMER_IN_PROMPT: Final = "the customer"
"""What a customer placeholder becomes in the system prompt: the name changes per call, so it
goes in the call's context message after the byte-stable prompt (docs/dialog.md)."""


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


BUSINESS_INFO_KEYS: Final[Mapping[str, str]] = {
    "company_name": "company (also company, name)",
    "company": "company",
    "name": "company",
    "description": "company_info",
    "product_description": "product_facts (first)",
    "value_proposition": "value_proposition",
    "language": "language",
    "purpose": "purpose",
    "greeting": "greeting",
    "outbound_greeting": "outbound_greeting",
    "goodbye": "goodbye",
    "ai_disclosure": "ai_disclosure / disclose_ai",
    "ai_answer": "ai_answer",
    "recording_notice": "recording_notice",
}
"""``business_info`` keys with a place of their own in the profile (docs/api.md "What the agent
is taught"). Every other key with a text, number or list value is company information
("industry: solar"), so nothing a client writes there is dropped."""


_TEXT_KEYS: Final = frozenset(BUSINESS_INFO_KEYS) - {"ai_disclosure"}


def check_business_info(info: Mapping[str, Any]) -> None:
    """Raise :class:`BusinessInfoError` naming the first ``business_info`` key the agent could
    not use as given: a key of :data:`BUSINESS_INFO_KEYS` that is not text, an
    ``ai_disclosure`` that is neither text nor true/false, or a disclosure or ``ai_answer``
    that does not say the agent is an AI (docs/api.md "What the agent is taught")."""
    for key in sorted(info):
        value = info[key]
        if key in _TEXT_KEYS and not isinstance(value, str):
            raise BusinessInfoError(key, "must be text")
        if key == "ai_disclosure" and not isinstance(value, str | bool):
            raise BusinessInfoError(key, "must be text, or false to leave the disclosure out")
        denies = isinstance(value, str) and not admits_ai(value)
        if key in ("ai_answer", "ai_disclosure") and denies:
            raise BusinessInfoError(
                key, f"must say that the agent is an AI (one of: {', '.join(AI_WORDS)})"
            )


class BusinessInfoError(ValueError):
    """A ``business_info`` key the agent cannot use as given."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"business_info.{key}: {reason}")
        self.field = f"business_info.{key}"
        self.reason = reason


def _other_info(info: Mapping[str, Any]) -> list[str]:
    """The ``business_info`` entries without a place of their own, as "label: value"."""
    return [
        f"{_label(key)}: {_text(value)}"
        for key, value in sorted(info.items())
        if key not in BUSINESS_INFO_KEYS and _text(value).strip()
    ]


def _of_type(trainings: Sequence[TrainingView], kind: TrainingType) -> list[str]:
    return [t.training_content for t in trainings if t.training_type == kind and t.training_content]


def build_agent_profile(
    agent: AgentView, trainings: Sequence[TrainingView], client_name: str
) -> AgentProfile:
    """The dialog profile of ``agent`` trained with ``trainings`` (oldest first).

    What comes from where:

    - name, personality: the agent's ``agent_name`` and ``personality_type``;
    - company: ``business_info.company_name`` / ``company`` / ``name``, else the client's name;
    - company_info: ``company`` sessions, then ``business_info.description``, then every
      ``business_info`` key without a place of its own (:data:`BUSINESS_INFO_KEYS`);
    - value_proposition: ``business_info.value_proposition``;
    - language, purpose, greeting, outbound_greeting, goodbye, ai_disclosure, ai_answer,
      recording_notice: ``business_info`` keys of those names (purpose also
      ``sales_goals.purpose`` / ``primary_goal``; ``ai_disclosure: false`` turns the greeting's
      disclosure off);
    - script: ``script`` sessions; product_facts: ``business_info.product_description``, every
      session's ``product_details`` and the ``product`` sessions' text; objection_answers:
      every session's ``objection_responses`` (the newest answer to an objection, or the one
      its calls did best with once it is ``optimizing``: docs/learning.md);
    - bracket placeholders (``[AGENT_NAME]``, ``[COMPANY]``, ``[CUSTOMER_NAME]``, ``[NAME]``)
      in the taught texts are filled in; the customer's becomes "the customer" in the prompt
      (the name itself is per call: :func:`fill_placeholders`);
    - goals: ``goals`` sessions and the ``sales_goals`` entries; techniques: every session's
      ``sales_techniques`` and the ``techniques`` sessions' text; instructions: every session's
      ``client_instructions``.
    """
    info = agent.business_info or {}
    goals_data = agent.sales_goals or {}
    company = clip(_first_text(info, "company_name", "company", "name") or client_name, 100)
    company_info = [
        *_of_type(trainings, TrainingType.COMPANY),
        _first_text(info, "description"),
        *_other_info(info),
    ]
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
    name = clip(agent.agent_name, 100) or defaults.name

    def fill(text: str) -> str:
        return fill_placeholders(text, name, defaults.company, CUSTOMER_IN_PROMPT)

    product_description = _first_text(info, "product_description")
    facts = _product_facts(trainings)
    if product_description:
        facts = _unique([product_description, *facts], _MAX_FACTS)
    # Checked when the client sets them (check_business_info); older rows that would deny
    # being an AI fall back to the defaults rather than break the agent's calls.
    ai_answer = _first_text(info, "ai_answer")
    if not admits_ai(ai_answer):
        ai_answer = ""
    recording_notice = _first_text(info, "recording_notice")
    disclosure = info.get("ai_disclosure")
    if isinstance(disclosure, str) and not admits_ai(disclosure):
        disclosure = None
    profile = AgentProfile(
        name=name,
        company=defaults.company,
        voice=agent.voice_model,
        personality=PERSONALITIES.get(str(agent.personality_type), defaults.personality),
        language=clip(_first_text(info, "language"), 40) or defaults.language,
        purpose=fill(clip(purpose, 300)) or defaults.purpose,
        script=fill(clip("\n".join(_of_type(trainings, TrainingType.SCRIPT)), _SCRIPT_CHARS)),
        product_facts=_each(facts, fill),
        objection_answers={k: fill(v) for k, v in _objections(trainings, agent).items()},
        goals=_each(_unique(goals, _MAX_GOALS), fill),
        company_info=fill(clip(" ".join(c for c in company_info if c), _COMPANY_CHARS)),
        value_proposition=fill(clip(_first_text(info, "value_proposition"), _VALUE_CHARS)),
        techniques=_each(_unique(techniques, _MAX_TECHNIQUES, 100), fill),
        instructions=_each(
            _unique((t.client_instructions for t in trainings), _MAX_INSTRUCTIONS), fill
        ),
        greeting=_template(clip(greeting, 300)) if greeting else defaults.greeting,
        outbound_greeting=_template(clip(outbound_greeting, 300)) if outbound_greeting else "",
        goodbye=fill(clip(goodbye, 300)) if goodbye else defaults.goodbye,
        disclose_ai=disclosure is not False,
        ai_disclosure=clip(disclosure, 200)
        if isinstance(disclosure, str) and disclosure.strip()
        else defaults.ai_disclosure,
        ai_answer=_template(clip(ai_answer, 300)) if ai_answer else defaults.ai_answer,
        recording_notice=clip(recording_notice, 200)
        if recording_notice
        else defaults.recording_notice,
    )
    return fit_prompt(profile)


def _each(items: list[str], fill: Callable[[str], str]) -> list[str]:
    return [fill(item) for item in items]


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
