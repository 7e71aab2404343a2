"""The dial-time rules: may this number be called now? (docs/scheduler.md, "Dial-time rules").

Pure: facts in (``store.services.dial_queue.DialFacts``, read under the customer's row lock at
the moment of dialling), a :class:`~callagent.store.services.dial_queue.Verdict` out. The same
function serves the scheduler, for each due row it is about to dial, and start-call. Checked in
this order, the first that stops the call wins:

1. **do-not-call** - the number is on the client's suppression list (or the customer is
   flagged): the row is closed, ``do_not_call``;
2. **number** - of a blocked class (premium rate, shared cost, satellite, … from
   ``phonenumbers.number_type``; ``invalid`` only if listed), or from a country outside the
   allow-list: closed;
3. **attempts** - ``max_attempts_24h`` calls to this number in the last 24 h: moved to when the
   oldest of them is 24 h old;
4. **window** - the customer's local time (their record's zone, else the number's, else the
   agent's: ``dialog.when.customer_time_zone``) inside the legal window (default 08:00-21:00,
   Monday-Saturday) and the agent's working hours in the agent's zone: else moved to the next
   open minute (``dialog.when.CallingWindow``, DST-safe);
5. **one live call per customer** - the customer is on a call now: wait;
6. **caps** - live calls of the agent or the client at their maximum: wait.

This node's own capacity is no rule here: the scheduler takes a slot from the node's admission
control before it dials (``routing.max_active_calls``, docs/scheduler.md "Capacity"), the one
count of every call on the node.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType

from callagent.dialog.when import CallingWindow, NoCallingTime, customer_time_zone
from callagent.store.services.dial_queue import DialFacts, Verdict

#: Number classes callagent never dials unless a client's policy says otherwise: they cost the
#: caller extra (premium rate, shared cost, UAN), reach no person (pager, voicemail access) or
#: are satellite lines billed per minute at high rates.
DEFAULT_BLOCKED_TYPES: frozenset[str] = frozenset(
    {
        "premium_rate",
        "shared_cost",
        "satellite",
        "international_network",
        "uan",
        "pager",
        "voicemail",
    }
)
_TYPE_NAMES = {
    getattr(PhoneNumberType, name): name.lower()
    for name in dir(PhoneNumberType)
    if name.isupper() and isinstance(getattr(PhoneNumberType, name), int)
}
#: The names ``number_type`` can give, lower case (``phonenumbers.PhoneNumberType``).
NUMBER_TYPES: frozenset[str] = frozenset(
    {*_TYPE_NAMES.values(), "satellite", "international_network", "invalid"}
)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def number_class(phone: str) -> tuple[str, str]:
    """(type, region) of an E.164 number as phonenumbers' metadata classifies it; type
    ``invalid`` when it is no valid number."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return "invalid", ""
    if not phonenumbers.is_valid_number(parsed):
        return "invalid", phonenumbers.region_code_for_number(parsed) or ""
    kind = _TYPE_NAMES.get(phonenumbers.number_type(parsed), "unknown")
    # phonenumbers has no satellite type: satellite and international networks are the
    # non-geographic country codes of ITU-T E.164 (+870 Inmarsat, +881 GMSS, +882/+883 networks).
    if parsed.country_code in (870, 881):
        kind = "satellite"
    elif parsed.country_code in (882, 883):
        kind = "international_network"
    return kind, phonenumbers.region_code_for_number(parsed) or ""


def parse_days(text: str) -> frozenset[int]:
    """``mon-sat`` / ``mon,wed,fri`` / ``mon-sun`` as weekday numbers (Monday = 0)."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        if first not in _WEEKDAYS or (last and last not in _WEEKDAYS):
            raise ValueError(f"{part!r} is not a weekday or a range like mon-sat")
        a, b = _WEEKDAYS.index(first), _WEEKDAYS.index(last or first)
        if b < a:
            raise ValueError(f"{part!r} runs backwards")
        days.update(range(a, b + 1))
    if not days:
        raise ValueError("no weekdays given")
    return frozenset(days)


@dataclass(frozen=True)
class DialPolicy:
    """The installation's dial-time rules (the ``scheduler`` settings); an agent's
    ``dial_policy`` may narrow the country allow-list and its own concurrency cap."""

    legal_start: dt.time = dt.time(8)
    legal_end: dt.time = dt.time(21)
    legal_days: frozenset[int] = frozenset(range(6))
    blocked_types: frozenset[str] = DEFAULT_BLOCKED_TYPES
    allowed_countries: frozenset[str] = frozenset()
    max_attempts_24h: int = 3
    max_calls_per_agent: int = 4
    max_calls_per_client: int = 4
    check_window: bool = True


def check(facts: DialFacts, policy: DialPolicy) -> Verdict:
    """The verdict of the rules in the module docstring, in that order."""
    if facts.suppressed:
        return Verdict("close", "do_not_call", f"{facts.phone} is on the do-not-call list")
    kind, region = number_class(facts.phone)
    if kind in policy.blocked_types:
        return Verdict("close", "blocked_number_type", f"{facts.phone} is a {kind} number")
    countries = policy.allowed_countries
    agent_countries = facts.agent_policy.get("allowed_countries")
    if isinstance(agent_countries, list) and agent_countries:
        countries = frozenset(str(c).upper() for c in agent_countries)
    if countries and region not in countries:
        return Verdict(
            "close",
            "country_not_allowed",
            f"{facts.phone} is in {region or 'no country'}; "
            f"allowed: {', '.join(sorted(countries))}",
        )
    if policy.max_attempts_24h and len(facts.attempts_24h) >= policy.max_attempts_24h:
        oldest = facts.attempts_24h[-policy.max_attempts_24h]
        return Verdict(
            "move",
            "attempt_limit",
            f"{len(facts.attempts_24h)} calls to {facts.phone} in the last 24 h",
            at=oldest + dt.timedelta(hours=24),
        )
    if policy.check_window:
        verdict = _window(facts, policy)
        if verdict is not None:
            return verdict
    if facts.customer_live_calls > 0:
        return Verdict("wait", "call_in_progress", "the customer is on a call now")
    agent_cap = facts.agent_policy.get("max_concurrent_calls")
    agent_cap = agent_cap if isinstance(agent_cap, int) and agent_cap > 0 else None
    caps = (
        ("agent", facts.agent_live_calls, min(policy.max_calls_per_agent, agent_cap or 10**9)),
        ("client", facts.client_live_calls, policy.max_calls_per_client),
    )
    for who, live, cap in caps:
        if cap and live >= cap:
            return Verdict("wait", "too_many_calls", f"the {who} has {live} live calls (max {cap})")
    return Verdict("dial")


def _window(facts: DialFacts, policy: DialPolicy) -> Verdict | None:
    zone = customer_time_zone(facts.phone, facts.customer_zone, facts.agent_zone)
    start, end = facts.agent_hours
    window = CallingWindow(
        start=policy.legal_start,
        end=policy.legal_end,
        days=policy.legal_days,
        agent_hours=None if start == end else (start, end),
        agent_zone=None if start == end else ZoneInfo(facts.agent_zone),
    )
    if window.allows(facts.now, zone):
        return None
    try:
        at = window.next_open(facts.now, zone)
    except NoCallingTime:
        return Verdict(
            "close", "no_calling_time", "the legal window and the agent's hours never overlap"
        )
    local = facts.now.astimezone(zone)
    return Verdict(
        "move",
        "outside_calling_window",
        f"it is {local:%a %H:%M} in {zone.key}; next open {at:%a %Y-%m-%d %H:%M}",
        at=at.astimezone(dt.UTC),
    )
