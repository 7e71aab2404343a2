"""What the API's handlers share: the database, the call placer, the recordings and the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services.agents import VoiceChoices
from callagent.telephony.outbound import CallPlacer, NoTelephonyPlacer


@dataclass
class ApiState:
    """Injected into handlers as ``api``. ``clock`` is replaceable so tests pin the time
    (working hours, overdue callbacks) instead of depending on when they run. ``recordings`` is
    the folder of call recordings (``recording.folder``; None when recording is off): deleting a
    customer deletes their calls' files there."""

    db: Database
    placer: CallPlacer = field(default_factory=NoTelephonyPlacer)
    clock: Callable[[], dt.datetime] = utcnow
    recordings: Path | None = None
    voices: VoiceChoices | None = None
    """The voices installed on this node: an agent's ``voice_model`` must name one of them
    (docs/api.md); None (an API without models, as in some tests) stores it unchecked."""
