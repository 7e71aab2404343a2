"""Campaigns (docs/campaigns.md): ``campaigns`` (name, purpose, script override, pacing, retry
policy, dates, status) and ``campaign_contacts`` (one customer of a campaign, its state and the
``scheduled_callbacks`` row of kind ``campaign`` that dials it now).

New tables only: nothing existing changes.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("call_purpose", sa.String(length=500), nullable=False),
        sa.Column("script_override", sa.Text(), nullable=False),
        sa.Column("stagger_minutes", sa.Float(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_backoff", _JSON, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settled_since_event", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_campaigns_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_client_id_id", "campaigns", ["client_id", "id"], unique=False)
    op.create_table(
        "campaign_contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("callback_id", sa.Uuid(), nullable=True),
        sa.Column("last_call_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_campaign_contacts_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_contacts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer_profiles.id"],
            name=op.f("fk_campaign_contacts_customer_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_contacts")),
    )
    op.create_index(
        "uq_campaign_contacts_campaign_customer",
        "campaign_contacts",
        ["campaign_id", "customer_id"],
        unique=True,
    )
    op.create_index(
        "ix_campaign_contacts_campaign_state_position",
        "campaign_contacts",
        ["campaign_id", "state", "position"],
        unique=False,
    )
    op.create_index(
        "ix_campaign_contacts_client_campaign_id",
        "campaign_contacts",
        ["client_id", "campaign_id", "id"],
        unique=False,
    )
    op.create_index(
        "uq_campaign_contacts_callback_id", "campaign_contacts", ["callback_id"], unique=True
    )
    op.create_index(
        "ix_campaign_contacts_customer_id", "campaign_contacts", ["customer_id"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("campaign_contacts")
    op.drop_table("campaigns")
