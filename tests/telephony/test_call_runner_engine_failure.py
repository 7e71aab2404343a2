"""A call whose engine fails mid-call (docs/inference.md "When a worker dies"), on scripted
fakes through the AMI simulator: where the node can hand over (AMI and a transfer target) the
caller goes to a person; the stored call says which engine failed. The apology's audio and the
hang-up without a hand-over are tested with real worker processes in
tests/inference/test_kill_worker.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callagent.dialog.llm import ChatMessage
from callagent.inference.errors import EngineUnavailable
from callagent.store.states import CallStatus
from callagent.telephony.asterisk.call_tracker import CallTransferred, InboundCallStarted

from fakes.routing_rig import CALLER, make_tenant, number, routing_rig
from helpers import store_fixtures
from helpers.audio import voice


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")


async def gone(messages: list[ChatMessage]) -> AsyncIterator[str]:
    """What a worker client yields when its worker dies before the first token."""
    raise EngineUnavailable("llm", "worker killed by SIGKILL")
    yield ""  # pragma: no cover - makes this an async generator


async def test_a_call_whose_llm_is_gone_is_handed_to_a_person_and_stored_with_why(
    sqlite_url: str, tmp_path: Path
) -> None:
    did = number()
    async with routing_rig(
        sqlite_url, tmp_path, dids=[did], transcripts=["What are your opening hours?"]
    ) as rig:
        rig.llm.stream = gone  # type: ignore[method-assign]
        alpha = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        call = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, (voice(0.6, 16000),), pause_after_agent_s=0.4)
        )
        await rig.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in rig.events))
        call_id = next(e for e in rig.events if isinstance(e, InboundCallStarted)).call_id
        await rig.wait_for(lambda: any(isinstance(e, CallTransferred) for e in rig.events))
        await call
        final = await rig.ended(alpha.client_id, call_id)
    assert final.status == CallStatus.FAILED
    assert final.failure_reason == "engine crashed: llm (worker killed by SIGKILL)"
    assert final.transferred_to == "sales"  # Asterisk accepted the Redirect
    (action,) = final.actions_taken
    assert (action["type"], action["target"]) == ("transfer", "sales")
