"""What the agent knows about the person on the line, as one message for the LLM.

The customer record (docs/api.md: name, notes, preferences, past objections, call preference…)
and why the call is being made change from call to call, so they never go into the system
prompt - that must stay byte-stable per agent for the prefix cache (DESIGN.md "Known traps").
:class:`~callagent.dialog.conversation.Conversation` sends this text as a second system message
right after the agent's prompt. Everything is clipped: a CRM can store long notes, the small
model's context cannot take them.

What the post-call analysis of earlier calls learnt (the customer's ``conversation_memory``,
docs/analysis.md) comes as one line of at most :data:`MEMORY_CHARS` characters: the newest call
first, with the next step agreed, budget, pain points and who decides; older calls as far as
room is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from callagent.dialog.profile_builder import clip
from callagent.store.schemas import CustomerView

Direction = Literal["inbound", "outbound"]

_NOTES_CHARS: Final = 400
_ITEM_CHARS: Final = 120
_MAX_ITEMS: Final = 6
SCRIPT_CHARS: Final = 1200
"""The bound of a campaign's script in the context message (~300 tokens, once per call)."""
MEMORY_CHARS: Final = 600
"""The bound of the memory line: about 150 tokens, a few hundred ms of prompt processing on
the default model (docs/models.md), and it is processed once per call, not per turn."""


def _pairs(data: Mapping[str, Any]) -> str:
    items = []
    for key, value in sorted(data.items())[:_MAX_ITEMS]:
        if isinstance(value, dict | list) or value is None or value == "":
            continue
        items.append(f"{str(key).replace('_', ' ')}: {clip(str(value), _ITEM_CHARS)}")
    return "; ".join(items)


def customer_context(
    customer: CustomerView | None,
    *,
    direction: Direction,
    purpose: str = "",
    call_context: Mapping[str, Any] | None = None,
) -> str:
    """The context message for one call: who placed it and why, and what the customer record
    says. Deterministic for the same inputs."""
    lines: list[str] = []
    if direction == "outbound":
        lines.append("You placed this call to the customer; they did not call you.")
    else:
        lines.append("The customer called you.")
    if purpose.strip():
        lines.append(f"Reason for this call: {clip(purpose, 300)}.")
    if call_context:
        # A campaign's script override (docs/campaigns.md) is the client's words for this
        # call: its own line, longer than a context item, still after the stable prompt.
        script = call_context.get("script")
        described = _pairs({k: v for k, v in call_context.items() if k != "script"})
        if described:
            lines.append(f"Call context: {described}.")
        if isinstance(script, str) and script.strip():
            lines.append(f"Script for this call (follow it): {clip(script, SCRIPT_CHARS)}")
    if customer is None:
        lines.append("There is no customer record for this caller.")
    else:
        lines += _about(customer)
    return (
        "What the records say about this call (use it naturally; never read it out, and never "
        "mention records or notes):\n" + "\n".join(f"- {line}" for line in lines)
    )


def _about(customer: CustomerView) -> list[str]:
    lines: list[str] = []
    who = [f"Name: {clip(customer.name, 100)}"] if customer.name else []
    if customer.company:
        who.append(f"company: {clip(customer.company, 100)}")
    if who:
        lines.append("; ".join(who) + ".")
    else:
        lines.append("Their name is not known yet: ask for it politely.")
    if customer.total_calls <= 1:
        lines.append("This is the first call with them.")
    else:
        history = f"Calls with them so far: {customer.total_calls}"
        if customer.last_outcome is not None:
            history += f"; last outcome: {customer.last_outcome.value.replace('_', ' ')}"
        lines.append(history + ".")
    lines.append(f"Interest level: {customer.interest_level.value}.")
    if customer.call_preference_time:
        lines.append(f"Prefers to be called: {clip(customer.call_preference_time, 100)}.")
    if customer.conversation_notes:
        lines.append(f"Notes: {clip(customer.conversation_notes, _NOTES_CHARS)}")
    preferences = _pairs(customer.preferences or {})
    if preferences:
        lines.append(f"Preferences: {preferences}.")
    if customer.objections:
        raised = ", ".join(clip(str(o), 60) for o in customer.objections[-_MAX_ITEMS:])
        lines.append(f"Objections they raised before: {raised}.")
    memory = memory_line(customer.conversation_memory)
    if memory:
        lines.append(memory)
    if customer.do_not_call:
        lines.append("They asked not to be called again: respect it, do not try to sell.")
    return lines


_DECIDES: Final = {"yes": "they decide themselves", "no": "someone else decides"}


def _entry_text(entry: Mapping[str, Any], newest: bool) -> str:
    outcome = str(entry.get("outcome") or "").replace("_", " ")
    head = ", ".join(part for part in (str(entry.get("date") or ""), outcome) if part)
    text = f"{head}: " if head else ""
    text += clip(str(entry.get("summary") or ""), 300).rstrip(".") + "."
    if not newest:
        return text
    details = []
    if entry.get("next_action"):
        details.append(f"agreed next step: {clip(str(entry['next_action']), 120)}")
    if entry.get("budget"):
        details.append(f"budget: {clip(str(entry['budget']), 80)}")
    pains = [clip(str(p), 60) for p in entry.get("pain_points") or [] if str(p).strip()]
    if pains:
        details.append(f"pain points: {', '.join(pains[:3])}")
    decides = _DECIDES.get(str(entry.get("decision_maker") or ""))
    if decides:
        details.append(decides)
    if details:
        said = "; ".join(details)
        text += f" {said[0].upper()}{said[1:]}."
    return text


def memory_line(memory: list[Any] | None, max_chars: int = MEMORY_CHARS) -> str:
    """What earlier calls learnt, newest first, in at most ``max_chars`` characters (empty when
    nothing is known): the newest call in full (clipped if need be), older ones while they fit
    whole."""
    entries = [e for e in reversed(memory or []) if isinstance(e, Mapping) and e.get("summary")]
    if not entries:
        return ""
    prefix = "Earlier calls (newest first): "
    line = clip(prefix + _entry_text(entries[0], newest=True), max_chars)
    for entry in entries[1:]:
        more = f" | {_entry_text(entry, newest=False)}"
        if len(line) + len(more) > max_chars:
            break
        line += more
    return line
