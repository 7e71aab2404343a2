"""Resources for CRM integration (docs/api.md): customers, notes, calls, callbacks, opportunities.

Lists are newest first (callbacks: soonest first) and keyset-paginated: pass a page's
``next_cursor`` as ``cursor``. Ids in paths are UUIDs; another client's id is a 404.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from callagent.api.errors import responses
from callagent.api.params import Limit
from callagent.api.state import ApiState
from callagent.store.errors import ValidationFailed
from callagent.store.pagination import DEFAULT_LIMIT
from callagent.store.schemas import (
    CallbackCreate,
    CallbackPage,
    CallbackReschedule,
    CallbackView,
    CallDetail,
    CallPage,
    CustomerCreate,
    CustomerPage,
    CustomerUpdate,
    CustomerView,
    DoNotCall,
    ImportResult,
    NoteCreate,
    NotePage,
    NoteView,
    OpportunityCreate,
    OpportunityPage,
    OpportunityUpdate,
    OpportunityView,
)
from callagent.store.services import callbacks, calls, customers, notes, opportunities
from callagent.store.states import (
    CallbackStatus,
    CallOutcome,
    CallStatus,
    CallType,
    InterestLevel,
    OpportunityStage,
)
from callagent.telephony.recording import delete_recordings

#: CSV imports may be larger than JSON bodies (10,000 rows at most).
IMPORT_MAX_BODY = 5 * 1024 * 1024


class CustomerController(Controller):
    """Customer profiles."""

    path = "/api/customers"
    tags = ("customers",)

    @post("/", status_code=201, responses=responses(400, 401, 409))
    async def create(
        self,
        data: JSONBody[CustomerCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> CustomerView:
        """Create a customer (phone numbers are unique per client)."""
        return await customers.create_customer(api.db, client_id, data)

    @get("/", responses=responses(400, 401))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        interest_level: FromQuery[InterestLevel | None] = None,
        converted: FromQuery[bool | None] = None,
        do_not_call: FromQuery[bool | None] = None,
        phone_number: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CustomerPage:
        """Customers, newest first, filtered."""
        return await customers.list_customers(
            api.db,
            client_id,
            interest_level=interest_level,
            converted=converted,
            do_not_call=do_not_call,
            phone_number=phone_number,
            cursor=cursor,
            limit=limit,
        )

    @post(
        "/import/",
        status_code=200,
        request_max_body_size=IMPORT_MAX_BODY,
        responses=responses(400, 401, 409, 413),
    )
    async def import_csv(
        self,
        request: Request[Any, Any, Any],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        dry_run: FromQuery[bool] = False,
    ) -> ImportResult:
        """Create or update customers from CSV. Columns: phone_number (required), name, email,
        company, timezone, interest_level, call_preference_time, do_not_call. Bad rows are
        reported (row, field, reason) and skipped; ``dry_run=true`` checks without writing."""
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationFailed("file", "not UTF-8 text") from None
        return await customers.import_customers(api.db, client_id, text, dry_run=dry_run)

    @get("/{customer_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        customer_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> CustomerView:
        """One customer."""
        return await customers.get_customer(api.db, client_id, customer_id)

    @patch("/{customer_id:uuid}/", responses=responses(400, 401, 404, 409))
    async def update(
        self,
        customer_id: FromPath[uuid.UUID],
        data: JSONBody[CustomerUpdate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> CustomerView:
        """Change a customer's fields; interest level changes follow the transition table."""
        return await customers.update_customer(api.db, client_id, customer_id, data)

    @delete("/{customer_id:uuid}/", status_code=204, responses=responses(401, 404))
    async def remove(
        self,
        customer_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> None:
        """Delete a customer with their calls (and the calls' recordings), callbacks, notes and
        opportunities."""
        references = await customers.delete_customer(api.db, client_id, customer_id)
        if api.recordings is not None and references:
            await asyncio.to_thread(delete_recordings, api.recordings, references)

    @put("/{customer_id:uuid}/do-not-call/", responses=responses(400, 401, 404))
    async def do_not_call(
        self,
        customer_id: FromPath[uuid.UUID],
        data: JSONBody[DoNotCall],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> CustomerView:
        """Put a customer on (or take them off) the do-not-call list."""
        return await customers.mark_do_not_call(api.db, client_id, customer_id, data.do_not_call)

    @post("/{customer_id:uuid}/notes/", status_code=201, responses=responses(400, 401, 404))
    async def add_note(
        self,
        customer_id: FromPath[uuid.UUID],
        data: JSONBody[NoteCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> NoteView:
        """Add a manual note to a customer."""
        return await notes.add_note(api.db, client_id, customer_id, data)

    @get("/{customer_id:uuid}/notes/", responses=responses(400, 401, 404))
    async def list_notes(
        self,
        customer_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> NotePage:
        """A customer's notes (manual and call summaries), newest first."""
        return await notes.list_notes(api.db, client_id, customer_id, cursor=cursor, limit=limit)


class NoteController(Controller):
    """Single notes."""

    path = "/api/notes"
    tags = ("notes",)

    @get("/{note_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        note_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> NoteView:
        """One note."""
        return await notes.get_note(api.db, client_id, note_id)

    @delete("/{note_id:uuid}/", status_code=204, responses=responses(401, 404, 409))
    async def remove(
        self,
        note_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> None:
        """Delete a manual note (call summaries stay)."""
        await notes.delete_note(api.db, client_id, note_id)


class CallController(Controller):
    """Calls (read-only here: start-call and call-outcome write them)."""

    path = "/api/calls"
    tags = ("calls",)

    @get("/", responses=responses(400, 401))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        status: FromQuery[CallStatus | None] = None,
        outcome: FromQuery[CallOutcome | None] = None,
        call_type: FromQuery[CallType | None] = None,
        customer_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CallPage:
        """Calls newest first, filtered (no transcripts: see the detail)."""
        return await calls.list_calls(
            api.db,
            client_id,
            status=status,
            outcome=outcome,
            call_type=call_type,
            customer_id=customer_id,
            cursor=cursor,
            limit=limit,
        )

    @get("/{call_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        call_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> CallDetail:
        """One call with its transcript."""
        return await calls.get_call(api.db, client_id, call_id)


class CallbackController(Controller):
    """Scheduled callbacks."""

    path = "/api/callbacks"
    tags = ("callbacks",)

    @post("/", status_code=201, responses=responses(400, 401, 404, 409))
    async def create(
        self,
        data: JSONBody[CallbackCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CallbackView:
        """Schedule a callback."""
        return await callbacks.create_callback(api.db, client_id, data, now)

    @get("/", responses=responses(400, 401))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
        status: FromQuery[CallbackStatus | None] = None,
        overdue: FromQuery[bool | None] = None,
        customer_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CallbackPage:
        """Callbacks soonest first, filtered."""
        return await callbacks.list_callbacks(
            api.db,
            client_id,
            now,
            status=status,
            overdue=overdue,
            customer_id=customer_id,
            cursor=cursor,
            limit=limit,
        )

    @get("/{callback_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        callback_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CallbackView:
        """One callback."""
        return await callbacks.get_callback(api.db, client_id, callback_id, now)

    @post(
        "/{callback_id:uuid}/reschedule/", status_code=200, responses=responses(400, 401, 404, 409)
    )
    async def reschedule(
        self,
        callback_id: FromPath[uuid.UUID],
        data: JSONBody[CallbackReschedule],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CallbackView:
        """Move a scheduled callback to another time."""
        return await callbacks.reschedule_callback(api.db, client_id, callback_id, data, now)

    @post("/{callback_id:uuid}/cancel/", status_code=200, responses=responses(401, 404, 409))
    async def cancel(
        self,
        callback_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        now: NamedDependency[dt.datetime],
    ) -> CallbackView:
        """Cancel a callback."""
        return await callbacks.cancel_callback(api.db, client_id, callback_id, now)


class OpportunityController(Controller):
    """Sales opportunities."""

    path = "/api/opportunities"
    tags = ("opportunities",)

    @post("/", status_code=201, responses=responses(400, 401, 404))
    async def create(
        self,
        data: JSONBody[OpportunityCreate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> OpportunityView:
        """Create an opportunity for a customer."""
        return await opportunities.create_opportunity(api.db, client_id, data)

    @get("/", responses=responses(400, 401))
    async def list(
        self,
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
        stage: FromQuery[OpportunityStage | None] = None,
        customer_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> OpportunityPage:
        """Opportunities newest first."""
        return await opportunities.list_opportunities(
            api.db, client_id, stage=stage, customer_id=customer_id, cursor=cursor, limit=limit
        )

    @get("/{opportunity_id:uuid}/", responses=responses(401, 404))
    async def show(
        self,
        opportunity_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> OpportunityView:
        """One opportunity."""
        return await opportunities.get_opportunity(api.db, client_id, opportunity_id)

    @patch("/{opportunity_id:uuid}/", responses=responses(400, 401, 404, 409))
    async def update(
        self,
        opportunity_id: FromPath[uuid.UUID],
        data: JSONBody[OpportunityUpdate],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> OpportunityView:
        """Change an opportunity; closed stages are final."""
        return await opportunities.update_opportunity(api.db, client_id, opportunity_id, data)
