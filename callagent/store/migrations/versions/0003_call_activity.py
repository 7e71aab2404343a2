"""Crash recovery (docs/telephony.md, "After a crash"): each call session's last sign of life.

``call_sessions`` gains ``last_activity_at``: set by every write about a call and by a heartbeat
while the call is live, so a call whose node died can be told from a call another node still
runs (DESIGN.md, Scale-out), and an index on ``(status, last_activity_at)`` for the sweep that
settles such calls. Existing rows get their latest known time (end, start, creation), so a call
a crash left live before this upgrade is settled by the first sweep.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# SQLite adds a NOT NULL column only with a constant default, and any other change of a column
# makes Alembic rebuild the table ("move and copy"): dropping the old call_sessions with foreign
# keys on fires ON DELETE SET NULL and empties every note's link to its call
# (tests/store/test_migrations.py). So: one ADD COLUMN with a placeholder default, overwritten at
# once by each row's latest known time; PostgreSQL then drops the default, SQLite keeps it
# (every write of callagent sets the column).
_PLACEHOLDER = "1970-01-01 00:00:00"


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        "call_sessions",
        sa.Column(
            "last_activity_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=_PLACEHOLDER,
        ),
    )
    calls = sa.table(
        "call_sessions",
        sa.column("last_activity_at", sa.DateTime(timezone=True)),
        sa.column("ended_at", sa.DateTime(timezone=True)),
        sa.column("started_at", sa.DateTime(timezone=True)),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    latest = sa.func.coalesce(calls.c.ended_at, calls.c.started_at, calls.c.created_at)
    op.execute(calls.update().values(last_activity_at=latest))
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("call_sessions", "last_activity_at", server_default=None)
    op.create_index(
        "ix_call_sessions_status_last_activity",
        "call_sessions",
        ["status", "last_activity_at"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_call_sessions_status_last_activity", table_name="call_sessions")
    op.drop_column("call_sessions", "last_activity_at")
