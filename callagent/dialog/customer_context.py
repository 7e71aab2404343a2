"""What the agent knows about the person on the line, as one message for the LLM.

The customer record (docs/api.md: name, notes, preferences, past objections, call preference…)
and why the call is being made change from call to call, so they never go into the system
prompt - that must stay byte-stable per agent for the prefix cache (DESIGN.md "Known traps").
:class:`~callagent.dialog.conversation.Conversation` sends this text as a second system message
right after the agent's prompt. Everything is clipped: a CRM can store long notes, the small
model's context cannot take them.
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
        described = _pairs(call_context)
        if described:
            lines.append(f"Call context: {described}.")
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
    if customer.do_not_call:
        lines.append("They asked not to be called again: respect it, do not try to sell.")
    return lines
