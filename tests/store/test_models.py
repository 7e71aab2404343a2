"""The models' loading rules: relationships and the transcript load only on purpose."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import InvalidRequestError

from callagent.store.db import Database
from callagent.store.models import CallSession
from callagent.store.schemas import StartCall
from callagent.store.services import calls

from helpers.store_data import NOW, new_client, ready_agent


async def test_relationships_never_lazy_load(db: Database) -> None:
    client_id = await new_client(db)
    await ready_agent(db, client_id)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number="+14155550123"), NOW)
    async with db.read() as session:
        call = await session.get(CallSession, prepared.call_id)
        assert call is not None
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = call.customer
        with pytest.raises(InvalidRequestError):
            _ = call.transcript  # deferred, and loaded only on purpose
