"""The ``scheduler`` settings become the scheduler's parameter objects; bad values are refused
at start naming the setting (docs/scheduler.md, docs/configuration.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from callagent.app.scheduling import dial_policy, scheduler_params
from callagent.settings import SettingsError, load_settings


def test_the_defaults_are_the_documented_rules() -> None:
    settings = load_settings(environ={})
    policy = dial_policy(settings)
    assert (policy.legal_start, policy.legal_end) == (dt.time(8), dt.time(21))
    assert policy.legal_days == frozenset(range(6))  # Monday to Saturday
    assert {"premium_rate", "shared_cost", "satellite"} <= policy.blocked_types
    assert policy.allowed_countries == frozenset()
    params = scheduler_params(settings)
    assert params.poll_interval_s == 0.25
    assert params.live_grace_s == settings.recovery.stale_after_s
    assert params.node  # host:pid when not set
    assert params.retry.base == dt.timedelta(minutes=30)


def test_settings_from_the_environment_reach_the_rules() -> None:
    settings = load_settings(
        environ={
            "CALLAGENT_SCHEDULER_LEGAL_START": "09:00",
            "CALLAGENT_SCHEDULER_LEGAL_END": "20:00",
            "CALLAGENT_SCHEDULER_LEGAL_DAYS": "mon-fri",
            "CALLAGENT_SCHEDULER_ALLOWED_COUNTRIES": "de, at",
            "CALLAGENT_SCHEDULER_BLOCKED_NUMBER_TYPES": "premium_rate,voip",
            "CALLAGENT_SCHEDULER_NODE_NAME": "node-7",
        }
    )
    policy = dial_policy(settings)
    assert (policy.legal_start, policy.legal_end) == (dt.time(9), dt.time(20))
    assert policy.legal_days == frozenset(range(5))
    assert policy.allowed_countries == frozenset({"DE", "AT"})
    assert policy.blocked_types == frozenset({"premium_rate", "voip"})
    assert scheduler_params(settings).node == "node-7"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CALLAGENT_SCHEDULER_LEGAL_END": "07:00"}, "legal_end"),
        ({"CALLAGENT_SCHEDULER_LEGAL_START": "8 am"}, "legal_start"),
        ({"CALLAGENT_SCHEDULER_LEGAL_DAYS": "mon-funday"}, "legal_days"),
        ({"CALLAGENT_SCHEDULER_BLOCKED_NUMBER_TYPES": "premium"}, "blocked_number_types"),
        ({"CALLAGENT_SCHEDULER_ALLOWED_COUNTRIES": "Germany"}, "allowed_countries"),
        ({"CALLAGENT_SCHEDULER_LEASE_S": "1"}, "lease_s"),
        ({"CALLAGENT_SCHEDULER_NODE_NAME": "a b"}, "node_name"),
        # Removed: the node's capacity is routing.max_active_calls (docs/scheduler.md).
        ({"CALLAGENT_SCHEDULER_MAX_CALLS_PER_NODE": "2"}, "routing.max_active_calls"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)
