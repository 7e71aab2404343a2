"""Contact notes: manual notes and the call summaries ``call-outcome`` writes (docs/api.md)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from callagent.store.db import Database
from callagent.store.errors import Conflict, ValidationFailed
from callagent.store.models import CallSession, ContactNote, CustomerProfile
from callagent.store.pagination import SortKey, paginate
from callagent.store.schemas import NoteCreate, NotePage, NoteView
from callagent.store.services._common import get_scoped, note_view
from callagent.store.states import NoteKind

NEWEST_FIRST = (SortKey(ContactNote.id),)


async def add_note(
    db: Database, client_id: uuid.UUID, customer_id: uuid.UUID, data: NoteCreate
) -> NoteView:
    """A manual note on a customer, optionally about one of their calls."""
    async with db.write() as session:
        customer = await get_scoped(session, CustomerProfile, client_id, customer_id, "customer")
        if data.call_id is not None:
            call = await get_scoped(session, CallSession, client_id, data.call_id, "call")
            if call.customer_id != customer.id:
                raise ValidationFailed("call_id", "that call is with another customer")
        note = ContactNote(
            client_id=client_id,
            customer_id=customer.id,
            call_id=data.call_id,
            kind=NoteKind.MANUAL,
            body=data.body,
        )
        session.add(note)
        await session.flush()
        return note_view(note)


async def list_notes(
    db: Database,
    client_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> NotePage:
    """A customer's notes, newest first."""
    statement = select(ContactNote).where(
        ContactNote.client_id == client_id, ContactNote.customer_id == customer_id
    )
    async with db.read() as session:
        # The page first: a bad limit or cursor is a 400 even for an unknown customer.
        page = await paginate(
            session, statement, NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
        await get_scoped(session, CustomerProfile, client_id, customer_id, "customer")
    return NotePage(items=[note_view(row) for row in page.rows], next_cursor=page.next_cursor)


async def get_note(db: Database, client_id: uuid.UUID, note_id: uuid.UUID) -> NoteView:
    """One note."""
    async with db.read() as session:
        return note_view(await get_scoped(session, ContactNote, client_id, note_id, "note"))


async def delete_note(db: Database, client_id: uuid.UUID, note_id: uuid.UUID) -> None:
    """Delete a manual note; call summaries are part of the call record and stay."""
    async with db.write() as session:
        note = await get_scoped(session, ContactNote, client_id, note_id, "note")
        if note.kind != NoteKind.MANUAL:
            raise Conflict("call summaries cannot be deleted; delete the customer instead")
        await session.execute(
            delete(ContactNote).where(ContactNote.id == note.id, ContactNote.client_id == client_id)
        )
