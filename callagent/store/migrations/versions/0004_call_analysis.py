"""Post-call analysis (docs/analysis.md): a durable job per call, the analysis on the call and
what it learnt about the customer.

* ``call_analysis_jobs``: one row per answered call (unique ``call_id``), with its status,
  attempts, backoff time (``run_after``) and the lease of the node running it (``locked_by``,
  ``locked_until``), indexed on ``(status, run_after)`` for the claim;
* ``call_sessions`` gains ``analysis`` (the validated answer and what was applied) and
  ``analyzed_at``, both null on existing rows (not analysed);
* ``customer_profiles`` gains ``conversation_memory``, a short list of what recent calls
  learnt; existing rows get an empty list.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "call_analysis_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "done",
                "failed",
                name="analysisstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=100), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["call_sessions.id"],
            name=op.f("fk_call_analysis_jobs_call_id_call_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_call_analysis_jobs_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_analysis_jobs")),
        sa.UniqueConstraint("call_id", name=op.f("uq_call_analysis_jobs_call_id")),
    )
    with op.batch_alter_table("call_analysis_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_analysis_jobs_status_run_after", ["status", "run_after"], unique=False
        )
        batch_op.create_index(
            "ix_call_analysis_jobs_client_id_id", ["client_id", "id"], unique=False
        )

    op.add_column("call_sessions", sa.Column("analysis", _JSON, nullable=True))
    op.add_column("call_sessions", sa.Column("analyzed_at", sa.DateTime(timezone=True)))

    # A plain ADD COLUMN with a default, never a batch "recreate": on SQLite that copies the
    # table and drops the old one, and with foreign keys on, dropping customer_profiles
    # deletes every call, callback and note of every customer (ON DELETE CASCADE).
    op.add_column(
        "customer_profiles",
        sa.Column("conversation_memory", _JSON, nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    # Plain DROP COLUMN (SQLite 3.35+), for the reason given in upgrade().
    op.drop_column("customer_profiles", "conversation_memory")
    op.drop_column("call_sessions", "analyzed_at")
    op.drop_column("call_sessions", "analysis")
    with op.batch_alter_table("call_analysis_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_call_analysis_jobs_client_id_id")
        batch_op.drop_index("ix_call_analysis_jobs_status_run_after")
    op.drop_table("call_analysis_jobs")
