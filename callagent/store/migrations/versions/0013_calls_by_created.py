"""Calls by client and time: ``ix_call_sessions_client_created`` on ``call_sessions
(client_id, created_at)``.

The analytics page (docs/dashboard.md, "Analytics") reads a client's calls of the last 7 to 90
days newest first (``WHERE client_id = ? AND created_at >= ? ORDER BY created_at DESC LIMIT``).
Without this index PostgreSQL walks every call of the client (``ix_call_sessions_client_id_id``
or a bitmap scan) and sorts; with it, one backward range scan reads only the window, already in
order (bench/bench_call_queries.py prints both plans). The calls list pages by id and filters
by status, outcome, type or customer: the existing ``(client_id, <filter>, id)`` indexes serve
it, so nothing changes for it.

A plain CREATE INDEX: it blocks writes to ``call_sessions`` while it builds (see
docs/dashboard.md, "Analytics", for the time measured on a large table).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        "ix_call_sessions_client_created",
        "call_sessions",
        ["client_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_call_sessions_client_created", table_name="call_sessions")
