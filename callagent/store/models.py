"""The tables of the REST API (docs/api.md, "Data model"), as SQLAlchemy 2 declarative models.

Rules that hold for every model here:

- Every tenant-owned row carries ``client_id`` and every query filters on it (services do), so
  one client's rows are invisible to another: no client may ever see or change another client's
  data (docs/api.md).
- Relationships are declared with ``lazy="raise"``: a service that needs related rows loads them
  explicitly (``selectinload``/joins); an accidental lazy load is an error in tests, not a
  hidden query per row in production (DESIGN.md practice 11). The transcript, the one large
  column, is deferred the same way so lists never drag it along.
- Indexes lead with ``client_id`` and end with the sort key of the list they serve, so every
  paginated list is an index range scan whatever the table size (docs/api.md, "Benchmark").
- Schema changes go through Alembic (``callagent/store/migrations``), never ``create_all``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Time,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from callagent.store.ids import new_id
from callagent.store.states import (
    AgentStatus,
    AnalysisStatus,
    CallbackStatus,
    CallOutcome,
    CallStatus,
    CallType,
    InterestLevel,
    NoteKind,
    OpportunityStage,
    PersonalityType,
    Sentiment,
    TrainingType,
)

# Named constraints make Alembic migrations reproducible on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend.

    SQLite has no time zone type and hands back naive values; storing UTC and re-attaching the
    zone on the way out keeps comparisons (overdue callbacks, working hours) correct everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")


def _enum(enum_class: type[Any]) -> Enum:
    # Stored as VARCHAR(32) without a CHECK constraint: new values need no migration; the API and
    # the services accept only the listed ones.
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    """Declarative base with the naming convention above."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Client(Base):
    """A tenant: one business using this installation."""

    __tablename__ = "clients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """One API key of a client. Only its SHA-256 is stored (the key is 256 random bits, so a
    slow password hash would add nothing but latency to every request)."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class AIAgent(Base):
    """The client's one agent (unique on ``client_id``) and what it has learnt."""

    __tablename__ = "ai_agents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), unique=True
    )
    agent_name: Mapped[str] = mapped_column(String(100))
    personality_type: Mapped[PersonalityType] = mapped_column(_enum(PersonalityType))
    voice_model: Mapped[str] = mapped_column(String(200))
    working_hours_start: Mapped[dt.time] = mapped_column(Time)
    working_hours_end: Mapped[dt.time] = mapped_column(Time)
    timezone: Mapped[str] = mapped_column(String(64))
    business_info: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    sales_goals: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[AgentStatus] = mapped_column(_enum(AgentStatus), default=AgentStatus.TRAINING)
    training_level: Mapped[int] = mapped_column(Integer, default=0)
    # Points per rubric area (callagent.store.training); the dashboard shows them.
    training_coverage: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    calls_handled: Mapped[int] = mapped_column(Integer, default=0)
    successful_conversions: Mapped[int] = mapped_column(Integer, default=0)
    conversation_memory: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    customer_preferences: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # Learning data: counts per outcome, per objection, satisfaction sums (call-outcome).
    performance_metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # Per-agent dial rules over the scheduler's settings (migration 0007; docs/scheduler.md):
    # {"allowed_countries": ["DE", …], "max_concurrent_calls": n, "on_machine": "hangup"}.
    dial_policy: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class PhoneNumber(Base):
    """A number (DID) the client's agent answers: an inbound call to it reaches that agent.

    Unique across the whole installation, not per client: one inbound call must route to
    exactly one client, so client B's number can never reach client A's agent. E.164, like
    customer numbers. Set through the agent's ``phone_numbers`` (setup / PATCH).
    """

    __tablename__ = "phone_numbers"
    __table_args__ = (Index("ix_phone_numbers_client_id_number", "client_id", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ai_agents.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class AgentTraining(Base):
    """One training session and what it taught."""

    __tablename__ = "agent_trainings"
    __table_args__ = (Index("ix_agent_trainings_agent_id_id", "agent_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"))
    training_type: Mapped[TrainingType] = mapped_column(_enum(TrainingType))
    training_content: Mapped[str] = mapped_column(Text, default="")
    product_details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    objection_responses: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    sales_techniques: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    client_instructions: Mapped[str] = mapped_column(Text, default="")
    # Coverage of this session's own rubric area after it, 0–100.
    completion_percentage: Mapped[int] = mapped_column(Integer, default=0)
    level_before: Mapped[int] = mapped_column(Integer, default=0)
    level_after: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class CustomerProfile(Base):
    """A person the agent calls or who calls it; one per phone number per client.

    Customers could be scoped per agent; a client has exactly one agent, so the client scope is
    the same thing and lets a CRM import customers before the agent is set up.
    """

    __tablename__ = "customer_profiles"
    __table_args__ = (
        Index("uq_customer_profiles_client_phone", "client_id", "phone_number", unique=True),
        Index("ix_customer_profiles_client_id_id", "client_id", "id"),
        Index("ix_customer_profiles_client_interest_id", "client_id", "interest_level", "id"),
        Index("ix_customer_profiles_client_converted_id", "client_id", "converted", "id"),
        Index("ix_customer_profiles_client_dnc_id", "client_id", "do_not_call", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))  # E.164
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str | None] = mapped_column(String(64))
    interest_level: Mapped[InterestLevel] = mapped_column(
        _enum(InterestLevel), default=InterestLevel.COLD
    )
    call_preference_time: Mapped[str] = mapped_column(String(100), default="")
    total_calls: Mapped[int] = mapped_column(Integer, default=0)
    answered_calls: Mapped[int] = mapped_column(Integer, default=0)
    total_talk_time_s: Mapped[float] = mapped_column(Float, default=0.0)
    last_call_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome))
    conversation_notes: Mapped[str] = mapped_column(Text, default="")
    preferences: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    objections: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # What the post-call analysis of their recent calls learnt, newest last, a few entries
    # (migration 0004; docs/analysis.md): the next call's prompt carries a short summary of it.
    conversation_memory: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_call_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    converted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class CallSession(Base):
    """One call, placed or received, with what was said and how it went."""

    __tablename__ = "call_sessions"
    __table_args__ = (
        Index("ix_call_sessions_client_id_id", "client_id", "id"),
        Index("ix_call_sessions_client_status_id", "client_id", "status", "id"),
        Index("ix_call_sessions_client_outcome_id", "client_id", "outcome", "id"),
        Index("ix_call_sessions_client_type_id", "client_id", "call_type", "id"),
        Index("ix_call_sessions_client_customer_id", "client_id", "customer_id", "id"),
        # The analytics page's window of a client's calls, newest first (migration 0013;
        # docs/dashboard.md, "Analytics").
        Index("ix_call_sessions_client_created", "client_id", "created_at"),
        Index("ix_call_sessions_customer_id", "customer_id"),
        # The crash-recovery sweep's scan across clients: live calls with no recent sign of life
        # (docs/telephony.md, "After a crash").
        Index("ix_call_sessions_status_last_activity", "status", "last_activity_at"),
        Index(
            "uq_call_sessions_client_idempotency_key", "client_id", "idempotency_key", unique=True
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_profiles.id", ondelete="CASCADE")
    )
    callback_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("scheduled_callbacks.id", ondelete="SET NULL")
    )
    call_type: Mapped[CallType] = mapped_column(_enum(CallType))
    purpose: Mapped[str] = mapped_column(String(500), default="")
    context: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    phone_number: Mapped[str] = mapped_column(String(20))
    status: Mapped[CallStatus] = mapped_column(_enum(CallStatus), default=CallStatus.QUEUED)
    outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome))
    failure_reason: Mapped[str] = mapped_column(String(500), default="")
    customer_response: Mapped[str] = mapped_column(Text, default="")
    conversation_notes: Mapped[str] = mapped_column(Text, default="")
    customer_satisfaction: Mapped[int | None] = mapped_column(Integer)
    # [{"speaker": "agent"|"caller", "text": str, "at": ISO-8601, "interrupted": bool}]
    transcript: Mapped[list[Any]] = mapped_column(
        JsonType, default=list, deferred=True, deferred_raiseload=True
    )
    sentiment: Mapped[Sentiment | None] = mapped_column(_enum(Sentiment))
    duration_s: Mapped[float | None] = mapped_column(Float)
    recording_ref: Mapped[str] = mapped_column(String(500), default="")
    latency: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    telephony_channel: Mapped[str] = mapped_column(String(200), default="")
    telephony_call_id: Mapped[str] = mapped_column(String(200), default="")
    # What the phone system reported (docs/telephony.md, migration 0002): the number that was called
    # (inbound), AMD's verdict, the Q.850 hang-up cause, the caller's key presses and a
    # hand-over target. Plain columns, so "every MACHINE call" is an ordinary query.
    did: Mapped[str] = mapped_column(String(20), default="")
    amd_status: Mapped[str] = mapped_column(String(16), default="")
    amd_cause: Mapped[str] = mapped_column(String(100), default="")
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_text: Mapped[str] = mapped_column(String(100), default="")
    dtmf: Mapped[str] = mapped_column(String(64), default="")
    transferred_to: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # The last sign of life of the node running the call: every write about the call and a
    # heartbeat while it is live (migration 0003). A live call silent for longer than the grace
    # period was lost with its node and is settled (docs/telephony.md, "After a crash").
    last_activity_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The post-call analysis (migration 0004; docs/analysis.md): the model's validated answer
    # and what of it was applied; null until the call was analysed.
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    analyzed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # What the agent did while the call was live (migration 0005; docs/dialog.md "In-call
    # actions"): [{"type": "schedule_callback", "source": "model"|"rule", ..., "taken_at":
    # ISO-8601, "result": "done"|"skipped: …"}], written by call_state.apply_call_action.
    actions_taken: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # start-call's Idempotency-Key header (migration 0007): one key, one call, per client.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))

    customer: Mapped[CustomerProfile] = relationship(lazy="raise")


class ScheduledCallback(Base):
    """A call the agent promised to make at a given time."""

    __tablename__ = "scheduled_callbacks"
    __table_args__ = (
        Index("ix_scheduled_callbacks_client_due", "client_id", "scheduled_at", "id"),
        Index(
            "ix_scheduled_callbacks_client_status_due", "client_id", "status", "scheduled_at", "id"
        ),
        Index("ix_scheduled_callbacks_customer_id", "customer_id"),
        # The scheduler's claim: due rows across clients (docs/scheduler.md).
        Index("ix_scheduled_callbacks_status_due", "status", "scheduled_at"),
        Index("uq_scheduled_callbacks_retry_of_call_id", "retry_of_call_id", unique=True),
        Index(
            "uq_scheduled_callbacks_client_idempotency_key",
            "client_id",
            "idempotency_key",
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_profiles.id", ondelete="CASCADE")
    )
    # The call that asked for this callback. A plain id, not a foreign key: call_sessions
    # already points here (callback_id), and a cycle of foreign keys cannot be created in order.
    origin_call_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    scheduled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[CallbackStatus] = mapped_column(
        _enum(CallbackStatus), default=CallbackStatus.SCHEDULED
    )
    priority: Mapped[int] = mapped_column(Integer, default=3)
    expected_outcome: Mapped[str] = mapped_column(String(500), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # The scheduler's (migration 0007; docs/scheduler.md): what kind of due call this is
    # (callback, retry, followup, scheduled), the node dialling it and until when its lease
    # holds, the call placed for the current attempt (written before the dial: a node that
    # takes over an expired lease never dials a second call for it), why a dial-time rule
    # closed it, and for a retry the unreached call it retries (one retry per call).
    kind: Mapped[str] = mapped_column(String(16), default="callback")
    locked_by: Mapped[str] = mapped_column(String(100), default="")
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    call_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    closed_reason: Mapped[str] = mapped_column(String(300), default="")
    retry_of_call_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Triggered calls (migration 0011; docs/api.md "Autonomous calls"): what the call is about,
    # handed to the call placed for the row, and the trigger's Idempotency-Key (one row per key).
    context: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(220))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    customer: Mapped[CustomerProfile] = relationship(lazy="raise")


class DoNotCallEntry(Base):
    """One line of a client's do-not-call suppression list (migration 0007; docs/scheduler.md).

    Append-only: a number is added (``action = "add"``) whenever a customer's do-not-call flag is
    set - by the API, an import, the agent during a call, the post-call analysis - and lifted
    (``"lift"``) only when a person clears the flag through the API; no row is ever changed or
    deleted. Keyed by the number, not the customer, so deleting the customer (or importing them
    again) leaves the number suppressed. A number's state is its newest row.
    """

    __tablename__ = "dnc_entries"
    __table_args__ = (
        Index("ix_dnc_entries_client_phone_created", "client_id", "phone_number", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))  # E.164
    action: Mapped[str] = mapped_column(String(8))  # add | lift
    source: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class ContactNote(Base):
    """A call summary or a manual note about a customer."""

    __tablename__ = "contact_notes"
    __table_args__ = (
        Index("ix_contact_notes_client_customer_id", "client_id", "customer_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_profiles.id", ondelete="CASCADE")
    )
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="SET NULL")
    )
    kind: Mapped[NoteKind] = mapped_column(_enum(NoteKind))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Opportunity(Base):
    """A possible sale to a customer."""

    __tablename__ = "opportunities"
    __table_args__ = (
        Index("ix_opportunities_client_id_id", "client_id", "id"),
        Index("ix_opportunities_client_stage_id", "client_id", "stage", "id"),
        Index("ix_opportunities_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_profiles.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(200))
    # Money in minor units (cents): exact on both backends, unlike floats or SQLite "NUMERIC".
    estimated_value_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    probability: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[OpportunityStage] = mapped_column(
        _enum(OpportunityStage), default=OpportunityStage.PROSPECTING
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Counter(Base):
    """Per-client running totals (customers per interest level, callbacks per status, …).

    Why: the dashboard must not slow down as tables grow (docs/api.md, "Benchmark"), and
    COUNT(*) over a million calls does. Services change these in the same transaction as the
    rows they count, with ``value = value + delta`` so concurrent writers never lose an update.
    """

    __tablename__ = "counters"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class CallAnalysisJob(Base):
    """The post-call analysis of one call, as a durable job (docs/analysis.md).

    A row, not a task in memory: it survives a restart, and with several nodes on one database
    exactly one of them runs it (DESIGN.md, Scale-out). Unique per call, so a call is never
    analysed twice. A node takes a job by writing its name and a lease (``locked_by``,
    ``locked_until``) - on PostgreSQL under ``SELECT … FOR UPDATE SKIP LOCKED``, on SQLite in
    the one write transaction at a time - and its result is stored only while it still holds
    that lease; a lease that runs out (the node died) lets another node take the job again.
    """

    __tablename__ = "call_analysis_jobs"
    __table_args__ = (
        # The claim's scan: due queued jobs and expired leases, oldest first.
        Index("ix_call_analysis_jobs_status_run_after", "status", "run_after"),
        Index("ix_call_analysis_jobs_client_id_id", "client_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[AnalysisStatus] = mapped_column(
        _enum(AnalysisStatus), default=AnalysisStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Not before this time: the call's last writes land first; a retry waits its backoff.
    run_after: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    locked_by: Mapped[str] = mapped_column(String(100), default="")
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


# Webhooks (migration 0006; docs/webhooks.md) -------------------------------------------------


class DeliveryStatus(StrEnum):
    """Where one event's delivery to one endpoint stands."""

    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"


# SQLite numbers rows only through an INTEGER PRIMARY KEY; BIGINT would not autoincrement there.
_Sequence = BigInteger().with_variant(Integer(), "sqlite")


class WebhookEndpoint(Base):
    """A URL of the client's CRM that hears about the events it subscribed to.

    The secret is stored as given: HMAC signing needs it (a hash would not do). It is shown
    once, when it is made or set, never in a listing."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_client_id_id", "client_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """The outbox: one event, written in the transaction of the change it reports.

    ``seq`` is the database's own numbering: two events of one call are written under that
    call's row lock, so the later one has the higher number (the order deliveries keep);
    ``id`` is the stable event id a receiver dedupes on."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_client_id_seq", "client_id", "seq"),)

    seq: Mapped[int] = mapped_column(_Sequence, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    # "call:<id>" or "customer:<id>": deliveries with one key go out in ``seq`` order.
    ordering_key: Mapped[str] = mapped_column(String(80), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event to one endpoint: its status, retries and the lease of the node sending it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The claim's scan: due pending deliveries and expired leases.
        Index("ix_webhook_deliveries_status_next_attempt", "status", "next_attempt_at"),
        # The ordering check: an earlier unfinished delivery of the same key holds later ones.
        Index("ix_webhook_deliveries_endpoint_key_seq", "endpoint_id", "ordering_key", "event_seq"),
        Index("ix_webhook_deliveries_client_id_id", "client_id", "id"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    ordering_key: Mapped[str] = mapped_column(String(80), default="")
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=12)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    locked_by: Mapped[str] = mapped_column(String(100), default="")
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class WebhookAttempt(Base):
    """One try of a delivery, as the log shows it: when, what came back, when the next is."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_attempt", "delivery_id", "attempt"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(1000), default="")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class WebFormTrigger(Base):
    """An agent's web-form trigger (migration 0011; docs/api.md "Web-form trigger"): the token
    in the form's URL, which reveals no id, and the secret its requests are signed with. The
    secret is kept as it is: checking an HMAC needs the key itself."""

    __tablename__ = "web_form_triggers"
    __table_args__ = (
        Index("uq_web_form_triggers_token", "token", unique=True),
        Index("uq_web_form_triggers_agent_id", "agent_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(64))
    secret: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebFormReplay(Base):
    """A signature a web-form trigger accepted, kept for the replay window: the unique index
    refuses the same signed request a second time, on any node (docs/api.md)."""

    __tablename__ = "web_form_replays"
    __table_args__ = (
        Index("uq_web_form_replays_trigger_signature", "trigger_id", "signature", unique=True),
        Index("ix_web_form_replays_seen_at", "seen_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    trigger_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("web_form_triggers.id", ondelete="CASCADE")
    )
    signature: Mapped[str] = mapped_column(String(100))
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# Campaigns (migration 0011; docs/campaigns.md) -----------------------------------------------


class Campaign(Base):
    """A batch of outbound calls with one purpose, paced and retried by its own policy.

    Its contacts become ``scheduled_callbacks`` rows of kind ``campaign``, staggered
    ``stagger_minutes`` apart, which the scheduler dials like any due row; at dial time it also
    checks the campaign's status and ``max_concurrent`` (``store/services/campaigns.py``)."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_client_id_id", "client_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # The call's purpose as start-call takes it ("sales_outreach", "renewal_reminder: …").
    call_purpose: Mapped[str] = mapped_column(String(500), default="")
    # Words of the client's for this campaign's calls only: they go into each call's context
    # message after the byte-stable prompt (docs/dialog.md), never into the prompt itself.
    script_override: Mapped[str] = mapped_column(Text, default="")
    stagger_minutes: Mapped[float] = mapped_column(Float, default=1.0)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=2)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Minutes before the next try after each unreached outcome: {"no_answer", "busy", "failed"}.
    retry_backoff: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    starts_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # Contacts finished since the last campaign.progress event (docs/campaigns.md, Webhooks).
    settled_since_event: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class CampaignContact(Base):
    """One customer of a campaign: where they stand, and the due row that dials them now."""

    __tablename__ = "campaign_contacts"
    __table_args__ = (
        Index("uq_campaign_contacts_campaign_customer", "campaign_id", "customer_id", unique=True),
        Index("ix_campaign_contacts_campaign_state_position", "campaign_id", "state", "position"),
        Index("ix_campaign_contacts_client_campaign_id", "client_id", "campaign_id", "id"),
        Index("uq_campaign_contacts_callback_id", "callback_id", unique=True),
        Index("ix_campaign_contacts_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_profiles.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    # pending | dialling | done | failed | suppressed | cancelled
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # The scheduled_callbacks row dialling them now (a plain id, like origin_call_id).
    callback_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_call_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
