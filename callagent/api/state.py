"""What the API's handlers share: the database, the call placer, the recordings and the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from callagent.scheduler.rules import DialPolicy, check
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services.agents import VoiceChoices
from callagent.store.services.dial_queue import DialFacts, Rule, Verdict
from callagent.telephony.admission import CallAdmission
from callagent.telephony.outbound import CallPlacer, NoTelephonyPlacer


@dataclass
class ApiState:
    """Injected into handlers as ``api``. ``clock`` is replaceable so tests pin the time
    (working hours, overdue callbacks) instead of depending on when they run. ``recordings`` is
    the folder of call recordings (``recording.folder``; None when recording is off): deleting a
    customer deletes their calls' files there. ``admission`` is the node's call count: start-call
    is refused (503) while it is full; None: no limit (docs/telephony.md "Capacity")."""

    db: Database
    placer: CallPlacer = field(default_factory=NoTelephonyPlacer)
    clock: Callable[[], dt.datetime] = utcnow
    recordings: Path | None = None
    admission: CallAdmission | None = None
    # start-call's dial-time rules (docs/scheduler.md): do-not-call list, blocked numbers, one
    # live call per customer, the day's attempts, the caps. Default: the rules' defaults
    # without the caps and the customer's calling window (start-call is asked for now, by a
    # person; the agent's working hours are checked on their own).
    dial_rule: Rule | None = field(default_factory=lambda: default_start_call_rule())
    voices: VoiceChoices | None = None
    """The voices installed on this node: an agent's ``voice_model`` must name one of them
    (docs/api.md); None (an API without models, as in some tests) stores it unchecked."""


@dataclass(frozen=True)
class StartCallRule:
    """The dial-time rules start-call checks (``policy``): with ``check_window``, also the
    customer's legal calling window, which a start-call with ``ignore_working_hours`` lifts
    (:meth:`without_window`; docs/api.md "start-call")."""

    policy: DialPolicy

    def __call__(self, facts: DialFacts) -> Verdict:
        """The verdict of the rules on ``facts``."""
        return check(facts, self.policy)

    def without_window(self) -> Rule:
        """The same rules without the calling window."""
        return StartCallRule(replace(self.policy, check_window=False))


def start_call_rule(policy: DialPolicy) -> Rule:
    """The rule a serving node's start-call checks: ``policy``, the customer's legal calling
    window included (unless ``policy.check_window`` is off)."""
    return StartCallRule(policy)


def default_start_call_rule() -> Rule:
    """The rule of an API built without settings (tests, tools): the default policy with the
    caps off (0) and without the customer's calling window."""
    return StartCallRule(
        DialPolicy(
            max_calls_per_agent=0,
            max_calls_per_client=0,
            check_window=False,
        )
    )
