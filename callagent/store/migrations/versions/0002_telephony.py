"""Telephony (docs/telephony.md): the numbers each client's agent answers, and what the phone system
reported about each call.

* ``phone_numbers``: DIDs, E.164, unique across the installation (an inbound call routes to
  exactly one client), owned by the client's agent;
* ``call_sessions`` gains ``did``, ``amd_status``, ``amd_cause``, ``hangup_cause``,
  ``hangup_cause_text``, ``dtmf`` and ``transferred_to``. Existing rows get empty values
  (server defaults), so the upgrade works on a filled database.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_COLUMNS = (
    ("did", 20),
    ("amd_status", 16),
    ("amd_cause", 100),
    ("hangup_cause_text", 100),
    ("dtmf", 64),
    ("transferred_to", 32),
)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "phone_numbers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["ai_agents.id"],
            name=op.f("fk_phone_numbers_agent_id_ai_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_phone_numbers_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_numbers")),
        sa.UniqueConstraint("number", name=op.f("uq_phone_numbers_number")),
    )
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_numbers_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(
            "ix_phone_numbers_client_id_number", ["client_id", "number"], unique=False
        )

    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        for name, length in _TEXT_COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=length), nullable=False, server_default="")
            )
        batch_op.add_column(sa.Column("hangup_cause", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        batch_op.drop_column("hangup_cause")
        for name, _ in reversed(_TEXT_COLUMNS):
            batch_op.drop_column(name)

    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_index("ix_phone_numbers_client_id_number")
        batch_op.drop_index(batch_op.f("ix_phone_numbers_agent_id"))

    op.drop_table("phone_numbers")
