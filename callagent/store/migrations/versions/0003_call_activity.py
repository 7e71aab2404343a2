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


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True)
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
    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        batch_op.alter_column(
            "last_activity_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.create_index(
            "ix_call_sessions_status_last_activity", ["status", "last_activity_at"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_call_sessions_status_last_activity")
        batch_op.drop_column("last_activity_at")
