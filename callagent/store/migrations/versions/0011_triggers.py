"""Calls nobody presses a button for (docs/api.md, "Autonomous calls" and "Web-form trigger").

* ``scheduled_callbacks.context``: what a triggered call is about (the trigger's ``context``),
  handed to the call the scheduler places for the row;
* ``scheduled_callbacks.idempotency_key`` with a unique index per client: a trigger repeated
  with the same ``Idempotency-Key`` finds its row instead of adding a second one;
* ``web_form_triggers``: one per agent, the unguessable token in the form's URL and the secret
  that signs its requests;
* ``web_form_replays``: the signatures seen within the replay window, unique per trigger, so a
  replayed request is refused by the database on every node.

Plain ADD COLUMN and new tables only (see 0004).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    table = "scheduled_callbacks"
    op.add_column(
        table, sa.Column("context", _JSON, nullable=False, server_default=sa.text("'{}'"))
    )
    op.add_column(table, sa.Column("idempotency_key", sa.String(220), nullable=True))
    op.create_index(
        "uq_scheduled_callbacks_client_idempotency_key",
        table,
        ["client_id", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "web_form_triggers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_web_form_triggers_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["ai_agents.id"],
            name=op.f("fk_web_form_triggers_agent_id_ai_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_form_triggers")),
    )
    op.create_index("uq_web_form_triggers_token", "web_form_triggers", ["token"], unique=True)
    op.create_index("uq_web_form_triggers_agent_id", "web_form_triggers", ["agent_id"], unique=True)
    op.create_table(
        "web_form_replays",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["web_form_triggers.id"],
            name=op.f("fk_web_form_replays_trigger_id_web_form_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_form_replays")),
    )
    op.create_index(
        "uq_web_form_replays_trigger_signature",
        "web_form_replays",
        ["trigger_id", "signature"],
        unique=True,
    )
    op.create_index("ix_web_form_replays_seen_at", "web_form_replays", ["seen_at"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_web_form_replays_seen_at", table_name="web_form_replays")
    op.drop_index("uq_web_form_replays_trigger_signature", table_name="web_form_replays")
    op.drop_table("web_form_replays")
    op.drop_index("uq_web_form_triggers_agent_id", table_name="web_form_triggers")
    op.drop_index("uq_web_form_triggers_token", table_name="web_form_triggers")
    op.drop_table("web_form_triggers")
    table = "scheduled_callbacks"
    op.drop_index("uq_scheduled_callbacks_client_idempotency_key", table_name=table)
    op.drop_column(table, "idempotency_key")
    op.drop_column(table, "context")
