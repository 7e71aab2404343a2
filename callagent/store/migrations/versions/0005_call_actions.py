"""In-call actions (docs/dialog.md, "In-call actions"): what the agent did during a call.

``call_sessions`` gains ``actions_taken``: one JSON entry per action the agent took while the
call was live (do-not-call, a callback or appointment with its resolved time, a hand-over, …),
with when it was taken and what came of it. Existing calls get an empty list.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    # A plain ADD COLUMN with a default, never a batch "recreate" (see 0004: on SQLite with
    # foreign keys on, recreating a table deletes the rows that cascade from it).
    op.add_column(
        "call_sessions",
        sa.Column("actions_taken", _JSON, nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("call_sessions", "actions_taken")
