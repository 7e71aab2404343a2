"""The scheduler's parameter objects, from the ``scheduler`` settings (docs/scheduler.md).

The composition root's part: components take these objects and never read settings
(DESIGN.md practice 12).
"""

from __future__ import annotations

import datetime as dt

from callagent.scheduler.rules import DialPolicy
from callagent.scheduler.service import SchedulerParams, default_node_name
from callagent.settings import Settings
from callagent.store.services.dial_queue import RetryPolicy


def dial_policy(settings: Settings) -> DialPolicy:
    """The dial-time rules of ``settings.scheduler``."""
    section = settings.scheduler
    return DialPolicy(
        legal_start=section.legal_time("legal_start"),
        legal_end=section.legal_time("legal_end"),
        legal_days=section.legal_day_set(),
        blocked_types=section.blocked_type_set(),
        allowed_countries=section.allowed_country_set(),
        max_attempts_24h=section.max_attempts_24h,
        max_calls_per_agent=section.max_calls_per_agent,
        max_calls_per_client=section.max_calls_per_client,
    )


def scheduler_params(settings: Settings) -> SchedulerParams:
    """The scheduler's parameter object; a live call counts as lost after crash recovery's
    ``stale_after_s``, as recovery itself counts it."""
    section = settings.scheduler
    return SchedulerParams(
        node=section.node_name or default_node_name(),
        poll_interval_s=section.poll_interval_s,
        lease_s=section.lease_s,
        batch=section.batch,
        wait_s=section.wait_s,
        policy=dial_policy(settings),
        retry=RetryPolicy(
            base=dt.timedelta(seconds=section.retry_after_s),
            max_attempts=section.retry_max_attempts,
        ),
        live_grace_s=settings.recovery.stale_after_s,
    )
