"""The call service on both backends: start-call's placement meeting the phone system's reports."""

from __future__ import annotations

from callagent.store.db import Database
from callagent.store.schemas import StartCall
from callagent.store.services import call_state, calls
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallOutcome, CallStatus

from helpers.store_data import NOW, number, ready_client


async def test_a_failed_placement_after_the_telephony_failure_is_no_error(db: Database) -> None:
    client_id = await ready_client(db)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=number()), NOW)
    failed = CallUpdate(status=CallStatus.FAILED, outcome=CallOutcome.FAILED)
    await call_state.apply_call_update(db, client_id, prepared.call_id, failed, NOW)
    result = await calls.record_placement(
        db,
        client_id,
        prepared.call_id,
        placed=False,
        reason="AMI down",
        telephony_call_id="",
        now=NOW,
    )
    assert (result.status, result.failure_reason) == (CallStatus.FAILED, "AMI down")
