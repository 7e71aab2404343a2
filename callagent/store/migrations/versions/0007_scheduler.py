"""The scheduler and its dial-time rules (docs/scheduler.md).

* ``scheduled_callbacks`` becomes the scheduler's queue of due calls: ``kind`` (callback, retry,
  followup, scheduled), the lease of the node dialling a row (``locked_by``, ``locked_until``),
  the call placed for its current attempt (``call_id``), why a dial-time rule closed it
  (``closed_reason``) and, for a retry, the call it retries (``retry_of_call_id``, unique: one
  retry per unreached call however many nodes look at it); an index for the claim's scan;
* ``dnc_entries``: the append-only do-not-call suppression list, keyed by number; every
  customer already flagged do-not-call is copied in, so deleting them now keeps them suppressed;
* ``call_sessions.idempotency_key`` with a unique index per client (start-call's
  ``Idempotency-Key`` header);
* ``ai_agents.dial_policy``: per-agent dial rules over the scheduler's settings.

Plain ADD COLUMN and new tables only (see 0004: a batch "recreate" on SQLite with foreign keys
on deletes the rows that cascade from the table).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    table = "scheduled_callbacks"
    op.add_column(
        table,
        sa.Column("kind", sa.String(16), nullable=False, server_default=sa.text("'callback'")),
    )
    op.add_column(
        table, sa.Column("locked_by", sa.String(100), nullable=False, server_default=sa.text("''"))
    )
    op.add_column(table, sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(table, sa.Column("call_id", sa.Uuid(), nullable=True))
    op.add_column(
        table,
        sa.Column("closed_reason", sa.String(300), nullable=False, server_default=sa.text("''")),
    )
    op.add_column(table, sa.Column("retry_of_call_id", sa.Uuid(), nullable=True))
    op.create_index("ix_scheduled_callbacks_status_due", table, ["status", "scheduled_at"])
    op.create_index(
        "uq_scheduled_callbacks_retry_of_call_id", table, ["retry_of_call_id"], unique=True
    )

    op.create_table(
        "dnc_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("phone_number", sa.String(20), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_dnc_entries_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dnc_entries")),
    )
    op.create_index(
        "ix_dnc_entries_client_phone_created",
        "dnc_entries",
        ["client_id", "phone_number", "created_at"],
    )
    # Customers already on the list are its first entries (ids made here: no UUID function is
    # common to SQLite and PostgreSQL).
    connection = op.get_bind()
    flagged = connection.execute(
        sa.text(
            "SELECT client_id, phone_number, do_not_call_at, updated_at FROM customer_profiles "
            "WHERE do_not_call"
        )
    ).all()
    if flagged:
        import uuid

        entries = sa.table(
            "dnc_entries",
            sa.column("id", sa.Uuid()),
            sa.column("client_id", sa.Uuid()),
            sa.column("phone_number", sa.String()),
            sa.column("action", sa.String()),
            sa.column("source", sa.String()),
            sa.column("created_at", sa.DateTime(timezone=True)),
        )
        op.bulk_insert(
            entries,
            [
                {
                    "id": uuid.uuid4(),
                    "client_id": row.client_id
                    if isinstance(row.client_id, uuid.UUID)
                    else uuid.UUID(str(row.client_id)),
                    "phone_number": row.phone_number,
                    "action": "add",
                    "source": "migration",
                    "created_at": row.do_not_call_at or row.updated_at,
                }
                for row in flagged
            ],
        )

    op.add_column("call_sessions", sa.Column("idempotency_key", sa.String(200), nullable=True))
    op.create_index(
        "uq_call_sessions_client_idempotency_key",
        "call_sessions",
        ["client_id", "idempotency_key"],
        unique=True,
    )
    op.add_column(
        "ai_agents",
        sa.Column("dial_policy", _JSON, nullable=False, server_default=sa.text("'{}'")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("ai_agents", "dial_policy")
    op.drop_index("uq_call_sessions_client_idempotency_key", table_name="call_sessions")
    op.drop_column("call_sessions", "idempotency_key")
    op.drop_index("ix_dnc_entries_client_phone_created", table_name="dnc_entries")
    op.drop_table("dnc_entries")
    table = "scheduled_callbacks"
    op.drop_index("uq_scheduled_callbacks_retry_of_call_id", table_name=table)
    op.drop_index("ix_scheduled_callbacks_status_due", table_name=table)
    for column in (
        "retry_of_call_id",
        "closed_reason",
        "call_id",
        "locked_until",
        "locked_by",
        "kind",
    ):
        op.drop_column(table, column)
