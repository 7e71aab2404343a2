"""What the API's handlers share: the database, the call placer and the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.telephony.outbound import CallPlacer, NoTelephonyPlacer


@dataclass
class ApiState:
    """Injected into handlers as ``api``. ``clock`` is replaceable so tests pin the time
    (working hours, overdue callbacks) instead of depending on when they run."""

    db: Database
    placer: CallPlacer = field(default_factory=NoTelephonyPlacer)
    clock: Callable[[], dt.datetime] = utcnow
