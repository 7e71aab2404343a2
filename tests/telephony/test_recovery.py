"""Crash recovery on the telephony side (docs/telephony.md, "After a crash"): the sweep asks
Asterisk (the AMI simulator on the rendered configuration) which calls it still has, settles the
others through the store, and repairs their recordings.

Each test has a database of its own: the sweep looks at every client's calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.schemas import StartCall
from callagent.store.services import calls
from callagent.store.services.recovery import INTERRUPTED, idle_calls
from callagent.store.states import CallOutcome, CallStatus
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.outbound import OutboundCallRequest
from callagent.telephony.recording import CallRecorder
from callagent.telephony.recovery import GONE_FROM_ASTERISK, CallRecovery, RecoveryParams

from fakes.ami_simulator import RING_OUT, Callee
from fakes.routing_rig import make_tenant, number, routing_rig
from helpers.store_fixtures import fresh_url

pytestmark = pytest.mark.timeout(60)

PARAMS = RecoveryParams(heartbeat_interval_s=1.0, stale_after_s=90.0, sweep_interval_s=60.0)


async def fresh_database() -> str:
    url = fresh_url("sqlite")
    database = Database(url)
    await database.migrate()
    await database.dispose()
    return url


def later(minutes: float) -> dt.datetime:
    """A sweep's clock: ``minutes`` from now, when every call written so far is idle."""
    return utcnow() + dt.timedelta(minutes=minutes)


def killed_recording(folder: Path, call_id: uuid.UUID, seconds: float) -> Path:
    """The call's recording as a ``kill -9`` during the call leaves it: only what reached the
    disk (the recording process never closed it)."""
    recorder = CallRecorder(folder / "live", call_id)
    frame = np.full(320, 500, dtype="<i2").tobytes()
    for _ in range(round(seconds * 50)):
        recorder.caller_audio(frame, 16000)
        recorder.agent_audio(frame)
    left = folder / recorder.path.name
    left.write_bytes(recorder.path.read_bytes())
    recorder.close()
    return left


async def test_a_call_asterisk_still_has_is_left_and_a_gone_one_is_settled(
    tmp_path: Path,
) -> None:
    ringing_number, gone_number = number(), number()
    async with routing_rig(
        await fresh_database(),
        tmp_path,
        callees={ringing_number: Callee(sip=RING_OUT)},  # rings until the ring timeout
        ring_timeout_s=30.0,
    ) as rig:
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        placed: dict[str, uuid.UUID] = {}
        for name, phone in (("ringing", ringing_number), ("gone", gone_number)):
            prepared = await calls.prepare_call(
                rig.db,
                tenant.client_id,
                StartCall(phone_number=phone, ignore_working_hours=True),
                utcnow(),
            )
            placed[name] = prepared.call_id
            await calls.record_placement(
                rig.db,
                tenant.client_id,
                prepared.call_id,
                placed=True,
                reason="",
                telephony_call_id=str(prepared.call_id),
                now=utcnow(),
            )
        # Only the first is really dialled; the other's channel is gone (its node died).
        await rig.placer.place_call(
            OutboundCallRequest(
                call_session_id=placed["ringing"],
                client_id=tenant.client_id,
                agent_id=uuid.uuid4(),
                customer_id=uuid.uuid4(),
                phone_number=ringing_number,
                call_type="outbound",
            )
        )
        await rig.wait_for(lambda: rig.sim.live_channel(placed["ringing"]) is not None)
        # The call's journal writes what AMI reported (its channel, then ringing) with its own
        # clock. A heartbeat racing that write counts nothing: the row's sign of life is then
        # newer than the heartbeat's, and touch_calls never moves one backwards (traced: the
        # ringing write took its time 8 ms after the heartbeat and committed first).
        await rig.wait_for_call(
            tenant.client_id, placed["ringing"], lambda d: d.status == CallStatus.RINGING
        )
        await rig.settled()
        recording = killed_recording(tmp_path, placed["gone"], 1.5)
        recovery = CallRecovery(
            rig.db,
            PARAMS,
            journals=rig.journals,
            ami=rig.ami,
            recordings=tmp_path,
            clock=lambda: later(10),
        )
        # AMI tracks the ringing call: this node's heartbeat covers it, as for the calls it runs.
        assert await recovery.heartbeat() == 1

        report = await recovery.sweep()

        assert report.still_on_asterisk == [placed["ringing"]]
        assert report.settled == [placed["gone"]]
        assert report.recordings_repaired == [recording.name]
        ringing = await calls.get_call(rig.db, tenant.client_id, placed["ringing"])
        assert ringing.status in (CallStatus.DIALING, CallStatus.RINGING)
        gone = await calls.get_call(rig.db, tenant.client_id, placed["gone"])
        # Without AMI the same sweep cannot tell: every idle call is settled.
        blind = CallRecovery(
            rig.db, PARAMS, journals=rig.journals, recordings=tmp_path, clock=lambda: later(10)
        )
        assert (await blind.sweep()).settled == [placed["ringing"]]
        ringing = await calls.get_call(rig.db, tenant.client_id, placed["ringing"])
    assert (gone.status, gone.outcome) == (CallStatus.FAILED, CallOutcome.FAILED)
    assert gone.failure_reason == INTERRUPTED + GONE_FROM_ASTERISK
    assert gone.recording_ref == recording.name
    audio, rate = soundfile.read(tmp_path / gone.recording_ref, dtype="int16")
    assert rate == 16000
    assert audio.shape[1] == 2
    assert len(audio) >= 16000  # at least the first second: the header was kept up to date
    assert (ringing.status, ringing.failure_reason) == (CallStatus.FAILED, INTERRUPTED)


async def test_the_calls_this_node_runs_are_never_swept(tmp_path: Path) -> None:
    """A call this node holds is alive whatever its row says (a heartbeat may be late when the
    database is slow): the sweep leaves it to the call, and the heartbeat covers it."""
    async with routing_rig(await fresh_database(), tmp_path) as rig:
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing")
        prepared = await calls.prepare_call(
            rig.db,
            tenant.client_id,
            StartCall(phone_number=number(), ignore_working_hours=True),
            utcnow(),
        )
        recovery = CallRecovery(rig.db, PARAMS, journals=rig.journals, clock=lambda: later(10))
        async with rig.journals.hold(prepared.call_id, tenant.client_id):
            report = await recovery.sweep()
            assert prepared.call_id not in report.settled
            assert await recovery.heartbeat() == 1
        detail = await calls.get_call(rig.db, tenant.client_id, prepared.call_id)
    assert detail.status == CallStatus.QUEUED


async def test_run_sweeps_at_once_keeps_a_heartbeat_and_stops_when_closed(tmp_path: Path) -> None:
    db = Database(await fresh_database())
    journals = CallJournals(db)
    try:
        tenant = await make_tenant(db, "Alma", "Alpha Roofing")
        five_minutes_ago = utcnow() - dt.timedelta(minutes=5)
        lost, running = [
            await calls.prepare_call(
                db,
                tenant.client_id,
                StartCall(phone_number=number(), ignore_working_hours=True),
                five_minutes_ago,
            )
            for _ in range(2)
        ]
        params = RecoveryParams(heartbeat_interval_s=0.1, stale_after_s=60, sweep_interval_s=60)
        recovery = CallRecovery(db, params, journals=journals)
        async with journals.hold(running.call_id, tenant.client_id):
            recovery.start()
            async with asyncio.timeout(5):
                while recovery.sweeps == 0:  # noqa: ASYNC110 - the sweep runs in its task
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # a few heartbeats
            started = asyncio.get_running_loop().time()
            await recovery.close()
            assert asyncio.get_running_loop().time() - started < 1  # not a sweep interval
        swept = await calls.get_call(db, tenant.client_id, lost.call_id)
        kept = await calls.get_call(db, tenant.client_id, running.call_id)
        idle = {c.call_id for c in await idle_calls(db, utcnow() - dt.timedelta(seconds=5))}
    finally:
        await journals.close()
        await db.dispose()
    assert (swept.status, swept.failure_reason) == (CallStatus.FAILED, INTERRUPTED)
    assert kept.status == CallStatus.QUEUED
    assert running.call_id not in idle  # its heartbeat kept it alive
