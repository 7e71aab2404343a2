"""Initial schema of the REST API (docs/api.md): clients, API keys, agents, training,
customers, calls, callbacks, notes, opportunities and counters.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table(
        "clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_table(
        "ai_agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("agent_name", sa.String(length=100), nullable=False),
        sa.Column(
            "personality_type",
            sa.Enum(
                "professional",
                "friendly",
                "enthusiastic",
                "consultative",
                "empathetic",
                "assertive",
                "casual",
                name="personalitytype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("voice_model", sa.String(length=200), nullable=False),
        sa.Column("working_hours_start", sa.Time(), nullable=False),
        sa.Column("working_hours_end", sa.Time(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column(
            "business_info",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sales_goals",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "training",
                "learning",
                "active",
                "optimizing",
                name="agentstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("training_level", sa.Integer(), nullable=False),
        sa.Column(
            "training_coverage",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("calls_handled", sa.Integer(), nullable=False),
        sa.Column("successful_conversions", sa.Integer(), nullable=False),
        sa.Column(
            "conversation_memory",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "customer_preferences",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "performance_metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_ai_agents_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_agents")),
        sa.UniqueConstraint("client_id", name=op.f("uq_ai_agents_client_id")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_api_keys_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_client_id"), ["client_id"], unique=False)

    op.create_table(
        "counters",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_counters_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "name", name=op.f("pk_counters")),
    )
    op.create_table(
        "customer_profiles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "interest_level",
            sa.Enum(
                "cold",
                "warm",
                "hot",
                "converted",
                name="interestlevel",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("call_preference_time", sa.String(length=100), nullable=False),
        sa.Column("total_calls", sa.Integer(), nullable=False),
        sa.Column("answered_calls", sa.Integer(), nullable=False),
        sa.Column("total_talk_time_s", sa.Float(), nullable=False),
        sa.Column("last_call_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "last_outcome",
            sa.Enum(
                "answered",
                "interested",
                "not_interested",
                "converted",
                "callback_requested",
                "demo_scheduled",
                "do_not_call",
                "transferred",
                "wrong_number",
                "no_answer",
                "busy",
                "voicemail",
                "failed",
                name="calloutcome",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("conversation_notes", sa.Text(), nullable=False),
        sa.Column(
            "preferences",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "objections",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("do_not_call", sa.Boolean(), nullable=False),
        sa.Column("do_not_call_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_customer_profiles_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_profiles")),
    )
    with op.batch_alter_table("customer_profiles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_profiles_client_converted_id",
            ["client_id", "converted", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_customer_profiles_client_dnc_id", ["client_id", "do_not_call", "id"], unique=False
        )
        batch_op.create_index(
            "ix_customer_profiles_client_id_id", ["client_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_customer_profiles_client_interest_id",
            ["client_id", "interest_level", "id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_customer_profiles_client_phone", ["client_id", "phone_number"], unique=True
        )

    op.create_table(
        "agent_trainings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column(
            "training_type",
            sa.Enum(
                "script",
                "product",
                "objections",
                "company",
                "goals",
                "techniques",
                name="trainingtype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("training_content", sa.Text(), nullable=False),
        sa.Column(
            "product_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "objection_responses",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sales_techniques",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("client_instructions", sa.Text(), nullable=False),
        sa.Column("completion_percentage", sa.Integer(), nullable=False),
        sa.Column("level_before", sa.Integer(), nullable=False),
        sa.Column("level_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["ai_agents.id"],
            name=op.f("fk_agent_trainings_agent_id_ai_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_agent_trainings_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_trainings")),
    )
    with op.batch_alter_table("agent_trainings", schema=None) as batch_op:
        batch_op.create_index("ix_agent_trainings_agent_id_id", ["agent_id", "id"], unique=False)

    op.create_table(
        "opportunities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("estimated_value_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "prospecting",
                "qualification",
                "proposal",
                "negotiation",
                "closed_won",
                "closed_lost",
                name="opportunitystage",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_opportunities_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer_profiles.id"],
            name=op.f("fk_opportunities_customer_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
    )
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.create_index("ix_opportunities_client_id_id", ["client_id", "id"], unique=False)
        batch_op.create_index(
            "ix_opportunities_client_stage_id", ["client_id", "stage", "id"], unique=False
        )
        batch_op.create_index("ix_opportunities_customer_id", ["customer_id"], unique=False)

    op.create_table(
        "scheduled_callbacks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("origin_call_id", sa.Uuid(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "in_progress",
                "completed",
                "cancelled",
                "failed",
                name="callbackstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("expected_outcome", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_scheduled_callbacks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer_profiles.id"],
            name=op.f("fk_scheduled_callbacks_customer_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_callbacks")),
    )
    with op.batch_alter_table("scheduled_callbacks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scheduled_callbacks_client_due", ["client_id", "scheduled_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_scheduled_callbacks_client_status_due",
            ["client_id", "status", "scheduled_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_scheduled_callbacks_customer_id", ["customer_id"], unique=False)

    op.create_table(
        "call_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("callback_id", sa.Uuid(), nullable=True),
        sa.Column(
            "call_type",
            sa.Enum(
                "inbound",
                "outbound",
                "scheduled",
                "followup",
                name="calltype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "dialing",
                "ringing",
                "in_progress",
                "completed",
                "failed",
                "cancelled",
                name="callstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "answered",
                "interested",
                "not_interested",
                "converted",
                "callback_requested",
                "demo_scheduled",
                "do_not_call",
                "transferred",
                "wrong_number",
                "no_answer",
                "busy",
                "voicemail",
                "failed",
                name="calloutcome",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("failure_reason", sa.String(length=500), nullable=False),
        sa.Column("customer_response", sa.Text(), nullable=False),
        sa.Column("conversation_notes", sa.Text(), nullable=False),
        sa.Column("customer_satisfaction", sa.Integer(), nullable=True),
        sa.Column(
            "transcript",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sentiment",
            sa.Enum(
                "positive", "neutral", "negative", name="sentiment", native_enum=False, length=32
            ),
            nullable=True,
        ),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("recording_ref", sa.String(length=500), nullable=False),
        sa.Column(
            "latency",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("telephony_channel", sa.String(length=200), nullable=False),
        sa.Column("telephony_call_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["ai_agents.id"],
            name=op.f("fk_call_sessions_agent_id_ai_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["scheduled_callbacks.id"],
            name=op.f("fk_call_sessions_callback_id_scheduled_callbacks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_call_sessions_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer_profiles.id"],
            name=op.f("fk_call_sessions_customer_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_sessions")),
    )
    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_sessions_client_customer_id", ["client_id", "customer_id", "id"], unique=False
        )
        batch_op.create_index("ix_call_sessions_client_id_id", ["client_id", "id"], unique=False)
        batch_op.create_index(
            "ix_call_sessions_client_outcome_id", ["client_id", "outcome", "id"], unique=False
        )
        batch_op.create_index(
            "ix_call_sessions_client_status_id", ["client_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            "ix_call_sessions_client_type_id", ["client_id", "call_type", "id"], unique=False
        )
        batch_op.create_index("ix_call_sessions_customer_id", ["customer_id"], unique=False)

    op.create_table(
        "contact_notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum("call_summary", "manual", name="notekind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["call_sessions.id"],
            name=op.f("fk_contact_notes_call_id_call_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_contact_notes_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer_profiles.id"],
            name=op.f("fk_contact_notes_customer_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_notes")),
    )
    with op.batch_alter_table("contact_notes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_notes_client_customer_id", ["client_id", "customer_id", "id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table("contact_notes", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_notes_client_customer_id")

    op.drop_table("contact_notes")
    with op.batch_alter_table("call_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_call_sessions_customer_id")
        batch_op.drop_index("ix_call_sessions_client_type_id")
        batch_op.drop_index("ix_call_sessions_client_status_id")
        batch_op.drop_index("ix_call_sessions_client_outcome_id")
        batch_op.drop_index("ix_call_sessions_client_id_id")
        batch_op.drop_index("ix_call_sessions_client_customer_id")

    op.drop_table("call_sessions")
    with op.batch_alter_table("scheduled_callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_callbacks_customer_id")
        batch_op.drop_index("ix_scheduled_callbacks_client_status_due")
        batch_op.drop_index("ix_scheduled_callbacks_client_due")

    op.drop_table("scheduled_callbacks")
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_index("ix_opportunities_customer_id")
        batch_op.drop_index("ix_opportunities_client_stage_id")
        batch_op.drop_index("ix_opportunities_client_id_id")

    op.drop_table("opportunities")
    with op.batch_alter_table("agent_trainings", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_trainings_agent_id_id")

    op.drop_table("agent_trainings")
    with op.batch_alter_table("customer_profiles", schema=None) as batch_op:
        batch_op.drop_index("uq_customer_profiles_client_phone")
        batch_op.drop_index("ix_customer_profiles_client_interest_id")
        batch_op.drop_index("ix_customer_profiles_client_id_id")
        batch_op.drop_index("ix_customer_profiles_client_dnc_id")
        batch_op.drop_index("ix_customer_profiles_client_converted_id")

    op.drop_table("customer_profiles")
    op.drop_table("counters")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_client_id"))

    op.drop_table("api_keys")
    op.drop_table("ai_agents")
    op.drop_table("clients")
