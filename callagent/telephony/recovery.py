"""After a crash nothing stays stuck: this node's part (docs/telephony.md, "After a crash").

A node killed mid-call leaves its calls live in the store, their callbacks ``in_progress`` and
their recordings with a header that undercounts the audio. :class:`CallRecovery` runs in
``callagent serve`` for as long as the node does:

* **heartbeat** every ``heartbeat_interval_s``: one write that marks every call this node runs
  (:meth:`CallJournals.heartbeat`), and every call AMI reports live, as alive;
* **sweep** at start-up and then every ``sweep_interval_s``: the live calls without a sign of
  life for ``stale_after_s`` (``store/services/recovery.py`` holds that rule) are settled -
  unless Asterisk still has a channel for them (a ``Status`` listing, when AMI is connected), or
  this node holds them. Each settled call's recording, if it is in this node's folder, gets its
  header repaired and becomes the call's ``recording_ref``. Then the callbacks left
  ``in_progress`` that no call will settle are retried.

Nothing here depends on what this process remembers from before a restart (DESIGN.md, Modes):
the store and Asterisk are asked each time. Several nodes may sweep at once; the store settles
each call once, under its row lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from callagent.background import BackgroundLoop
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import recovery as store
from callagent.telephony.asterisk.ami import AmiClient, AmiError
from callagent.telephony.asterisk.config import CALL_ID_VARIABLE
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.recording import repair_recording

log = logging.getLogger(__name__)

AMI_WAIT_S: Final = 5.0
"""How long the first sweep waits for AMI to log in (it starts with the node): with AMI a call
Asterisk still has is recognised; without it the sweep goes by the store alone."""

GONE_FROM_ASTERISK: Final = "; Asterisk has no channel for it"
"""Added to the failure reason when AMI confirmed the call is gone."""

STOP_TIMEOUT_S: Final = 10.0
"""How long :meth:`CallRecovery.close` lets a pass in progress finish before cancelling it."""


@dataclass(frozen=True)
class RecoveryParams:
    """How often this node shows its calls are alive and looks for calls whose node died."""

    heartbeat_interval_s: float = 15.0
    stale_after_s: float = 90.0
    """A live call without any write or heartbeat for this long was lost with its node."""
    sweep_interval_s: float = 60.0


@dataclass
class SweepReport:
    """What one sweep did, by ids."""

    settled: list[uuid.UUID] = field(default_factory=list)
    still_on_asterisk: list[uuid.UUID] = field(default_factory=list)
    recordings_repaired: list[str] = field(default_factory=list)
    callbacks_retried: list[uuid.UUID] = field(default_factory=list)


class CallRecovery:
    """The heartbeat of this node's calls and the sweep for calls whose node died."""

    def __init__(
        self,
        db: Database,
        params: RecoveryParams,
        *,
        journals: CallJournals,
        ami: AmiClient | None = None,
        recordings: Path | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._db = db
        self._params = params
        self._journals = journals
        self._ami = ami
        self._recordings = recordings
        self._clock = clock
        self.sweeps = 0
        """Sweeps finished so far."""
        self._waited_for_ami = ami is None
        # Two loops, so that a long sweep never delays this node's heartbeat.
        self._heartbeats = BackgroundLoop(
            "crash recovery heartbeat",
            self._beat,
            interval_s=params.heartbeat_interval_s,
            stop_timeout_s=STOP_TIMEOUT_S,
        )
        self._sweeps = BackgroundLoop(
            "crash recovery sweep",
            self._sweep_when_ready,
            interval_s=params.sweep_interval_s,
            stop_timeout_s=STOP_TIMEOUT_S,
        )

    def start(self) -> None:
        """Heartbeat and sweep in the background (see :meth:`run`) until :meth:`close`."""
        self._heartbeats.start()
        self._sweeps.start()

    async def run(self) -> None:
        """Sweep at once (once AMI has had a moment to log in), and heartbeat at once; then
        each again at its interval until :meth:`close`. A pass that fails is logged and tried
        again at its next interval: a database that is down for a while delays recovery,
        nothing else."""
        await asyncio.gather(self._heartbeats.run(), self._sweeps.run())

    async def close(self) -> None:
        """Stop after the passes in progress (a write cut off midway would only be retried by
        the next sweep, but a database connection cut off midway outlives the event loop)."""
        await asyncio.gather(self._heartbeats.close(), self._sweeps.close())

    async def _beat(self) -> None:
        await self.heartbeat()

    async def _sweep_when_ready(self) -> None:
        if not self._waited_for_ami and self._ami is not None:
            self._waited_for_ami = True
            if await self._sweeps.pause(AMI_WAIT_S, until=self._ami.wait_connected):
                return
        await self.sweep()

    async def heartbeat(self) -> int:
        """Mark the calls this node runs, and those AMI reports live, as alive."""
        also = [] if self._ami is None else [state.call_id for state in self._ami.tracker.active]
        return await self._journals.heartbeat(also)

    async def asterisk_calls(self) -> frozenset[uuid.UUID] | None:
        """The call ids of the channels Asterisk has right now; None when that cannot be known
        (no AMI, not connected, or the listing failed)."""
        if self._ami is None or not self._ami.connected:
            return None
        try:
            messages = await self._ami.send_action(
                {"Action": "Status", "Variables": CALL_ID_VARIABLE}
            )
        except (AmiError, TimeoutError) as error:
            log.warning("crash recovery: Asterisk's channels could not be listed: %r", error)
            return None
        listed: set[uuid.UUID] = set()
        for message in messages:
            if message.get("Event") != "Status":
                continue
            with contextlib.suppress(ValueError):
                listed.add(uuid.UUID(message.variables().get(CALL_ID_VARIABLE, "")))
        return frozenset(listed)

    async def sweep(self) -> SweepReport:
        """Settle the calls and callbacks whose node died (see the module docstring)."""
        report = SweepReport()
        now = self._clock()
        idle_before = now - dt.timedelta(seconds=self._params.stale_after_s)
        on_asterisk = await self.asterisk_calls()
        reason = store.INTERRUPTED + ("" if on_asterisk is None else GONE_FROM_ASTERISK)
        after: uuid.UUID | None = None
        while True:
            batch = await store.idle_calls(self._db, idle_before, after=after)
            held = set(self._journals.held_calls())  # running here: alive, whatever the store says
            for call in batch:
                if call.call_id in held:
                    continue
                if on_asterisk is not None and call.call_id in on_asterisk:
                    report.still_on_asterisk.append(call.call_id)
                    continue
                recording = await self._repair(call.call_id)
                if await store.settle_idle_call(
                    self._db, call, idle_before, reason=reason, recording_ref=recording
                ):
                    report.settled.append(call.call_id)
                    if recording is not None:
                        report.recordings_repaired.append(recording)
            if len(batch) < store.BATCH:
                break
            after = batch[-1].call_id
        report.callbacks_retried = await store.settle_stuck_callbacks(self._db, idle_before, now)
        self.sweeps += 1
        if report.settled or report.callbacks_retried:
            log.warning(
                "crash recovery: %d call(s) without a sign of life for %.0f s settled as "
                "interrupted (%d recording(s) repaired), %d callback(s) rescheduled",
                len(report.settled),
                self._params.stale_after_s,
                len(report.recordings_repaired),
                len(report.callbacks_retried),
            )
        return report

    async def _repair(self, call_id: uuid.UUID) -> str | None:
        """The call's recording in this node's folder, repaired; its name, or None."""
        if self._recordings is None:
            return None
        path = self._recordings / f"{call_id}.wav"
        try:
            seconds = await asyncio.to_thread(_repair_if_present, path)
        except OSError as error:
            log.warning("crash recovery: recording %s could not be repaired: %s", path, error)
            return None
        if seconds is None:
            return None
        log.info("crash recovery: recording %s repaired (%.1f s)", path.name, seconds)
        return path.name


def _repair_if_present(path: Path) -> float | None:
    return repair_recording(path) if path.is_file() else None
