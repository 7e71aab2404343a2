"""The dial-time rules as one table: facts at dial time in, the verdict out (docs/scheduler.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from callagent.scheduler.rules import DialPolicy, check, number_class
from callagent.store.services.dial_queue import DialFacts

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


BERLIN = "+4930901820"  # a Berlin fixed line
SAN_FRANCISCO = "+14155550123"  # US, California: America/Los_Angeles


def facts(**changes: Any) -> DialFacts:
    """A call that may go out: Wednesday 2026-03-04 10:00 UTC (11:00 in Berlin), a Berlin
    customer, a Berlin agent working 08:00-18:00, nothing else going on."""
    base = DialFacts(
        now=at("2026-03-04T10:00"),
        phone=BERLIN,
        customer_zone=None,
        agent_zone="Europe/Berlin",
        agent_hours=(dt.time(8), dt.time(18)),
        agent_policy={},
        suppressed=False,
        customer_live_calls=0,
        attempts_24h=(),
        agent_live_calls=0,
        client_live_calls=0,
    )
    return dataclasses.replace(base, **changes)


POLICY = DialPolicy()

# (case, facts, policy, expected action, expected code, expected time or None)
CASES = [
    ("an ordinary due call goes out", facts(), POLICY, "dial", "", None),
    (
        "a do-not-call added after the row was scheduled closes it",
        facts(suppressed=True),
        POLICY,
        "close",
        "do_not_call",
        None,
    ),
    (
        "do-not-call wins over every other rule",
        facts(suppressed=True, phone="+19005551234", now=at("2026-03-04T23:00")),
        POLICY,
        "close",
        "do_not_call",
        None,
    ),
    (
        "the window closed before the due time: moved to the next morning (Berlin 08:00)",
        facts(now=at("2026-03-04T20:30")),
        POLICY,
        "move",
        "outside_calling_window",
        at("2026-03-05T07:00"),
    ),
    (
        "the agent's hours end before the legal window: moved to the agent's next morning",
        facts(now=at("2026-03-04T17:30")),  # 18:30 in Berlin: legal, but the agent stopped
        POLICY,
        "move",
        "outside_calling_window",
        at("2026-03-05T07:00"),
    ),
    (
        "a customer in another zone: 02:00 in California is not called, 08:00 PST is",
        facts(phone=SAN_FRANCISCO, agent_hours=(dt.time(8), dt.time(20))),
        POLICY,
        "move",
        "outside_calling_window",
        at("2026-03-04T16:00"),  # 08:00 PST = 17:00 in Berlin, inside the agent's hours
    ),
    (
        "the customer record's own zone wins over the number's",
        facts(phone=SAN_FRANCISCO, customer_zone="Europe/Berlin"),
        POLICY,
        "dial",
        "",
        None,
    ),
    (
        "across the US change to summer time: Monday 08:00 PDT is 15:00 UTC, not 16:00",
        facts(
            phone=SAN_FRANCISCO,
            now=at("2026-03-08T06:00"),  # Saturday 22:00 PST; Sunday is closed
            agent_zone="America/Los_Angeles",
        ),
        POLICY,
        "move",
        "outside_calling_window",
        at("2026-03-09T15:00"),
    ),
    (
        "across the EU change to summer time: Monday 08:00 CEST is 06:00 UTC",
        facts(now=at("2026-03-28T21:00")),  # Saturday 22:00 CET; clocks go forward Sunday
        POLICY,
        "move",
        "outside_calling_window",
        at("2026-03-30T06:00"),
    ),
    (
        "a premium-rate number is never dialled",
        facts(phone="+19005551234"),
        POLICY,
        "close",
        "blocked_number_type",
        None,
    ),
    (
        "a satellite number is never dialled",
        facts(phone="+870772001234"),
        POLICY,
        "close",
        "blocked_number_type",
        None,
    ),
    (
        "a country outside the installation's allow-list is closed",
        facts(phone=SAN_FRANCISCO, customer_zone="Europe/Berlin"),
        dataclasses.replace(POLICY, allowed_countries=frozenset({"DE", "AT"})),
        "close",
        "country_not_allowed",
        None,
    ),
    (
        "the agent's own allow-list replaces the installation's",
        facts(agent_policy={"allowed_countries": ["US"]}),
        POLICY,
        "close",
        "country_not_allowed",
        None,
    ),
    (
        "three calls to the number in 24 h: moved to when the oldest is a day old",
        facts(
            attempts_24h=(at("2026-03-03T14:00"), at("2026-03-04T05:00"), at("2026-03-04T09:00"))
        ),
        POLICY,
        "move",
        "attempt_limit",
        at("2026-03-04T14:00"),
    ),
    (
        "two calls in 24 h are fine",
        facts(attempts_24h=(at("2026-03-04T05:00"), at("2026-03-04T09:00"))),
        POLICY,
        "dial",
        "",
        None,
    ),
    (
        "the customer is on a call: wait",
        facts(customer_live_calls=1),
        POLICY,
        "wait",
        "call_in_progress",
        None,
    ),
    (
        "the client's cap of live calls is full: wait",
        facts(client_live_calls=2),
        dataclasses.replace(POLICY, max_calls_per_client=2),
        "wait",
        "too_many_calls",
        None,
    ),
    (
        "the agent's own cap is below the installation's",
        facts(agent_live_calls=1, agent_policy={"max_concurrent_calls": 1}),
        POLICY,
        "wait",
        "too_many_calls",
        None,
    ),
    (
        "a cap of 0 is no cap",
        facts(client_live_calls=50, agent_live_calls=50),
        dataclasses.replace(POLICY, max_calls_per_agent=0, max_calls_per_client=0),
        "dial",
        "",
        None,
    ),
    (
        "start-call's policy leaves the window out",
        facts(now=at("2026-03-04T23:00")),
        dataclasses.replace(POLICY, check_window=False),
        "dial",
        "",
        None,
    ),
]


@pytest.mark.parametrize(
    ("facts_", "policy", "action", "code", "when"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_dial_time_rules(
    facts_: DialFacts,
    policy: DialPolicy,
    action: str,
    code: str,
    when: dt.datetime | None,
) -> None:
    verdict = check(facts_, policy)
    assert (verdict.action, verdict.code) == (action, code), verdict.reason
    assert verdict.at == when
    if action != "dial":
        assert verdict.reason  # a stopped row says why


def test_number_classes_come_from_phonenumbers_metadata() -> None:
    assert number_class("+19005551234") == ("premium_rate", "US")
    assert number_class("+4915112345678") == ("mobile", "DE")
    assert number_class("+870772001234")[0] == "satellite"
    assert number_class("not a number")[0] == "invalid"
