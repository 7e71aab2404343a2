"""Request and response bodies of the store's services (msgspec Structs).

The REST API (``callagent/api``) uses these directly as its bodies, so a field's constraints are
written once: msgspec enforces them while decoding, the API turns a failure into a 400 naming the
field, and the OpenAPI document shows them. Inputs forbid unknown fields (a typo is an error, not
a silently ignored value) and enums reject unknown values (docs/api.md, "Conventions").
Rules that need more than a field's type (phone numbers, time zones, transitions) are the
services' job.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from callagent.store.states import (
    AgentStatus,
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

# Shared field types ------------------------------------------------------------------------

ShortText = Annotated[str, Meta(max_length=200)]
Name = Annotated[str, Meta(min_length=1, max_length=100)]
LongText = Annotated[str, Meta(max_length=100_000)]
Note = Annotated[str, Meta(max_length=20_000)]
PhoneText = Annotated[
    str, Meta(min_length=1, max_length=40, description="E.164, e.g. +14155550123")
]
ClockTime = Annotated[
    str,
    Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", description="HH:MM, 24 h"),
]
TimeZoneName = Annotated[str, Meta(min_length=1, max_length=64, description="IANA zone")]
AwareDateTime = Annotated[dt.datetime, Meta(tz=True, description="ISO 8601 with a zone")]
Priority = Annotated[int, Meta(ge=1, le=5, description="1 = most urgent")]
Satisfaction = Annotated[int, Meta(ge=1, le=5)]
Percent = Annotated[int, Meta(ge=0, le=100)]
Money = Annotated[Decimal, Meta(description="amount, at most two decimals, 0 to 1e12")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
JsonObject = dict[str, Any]
# The numbers (DIDs) an agent answers (docs/api.md): E.164 after normalisation, unique across the
# installation. A short list: a business has a handful of lines, not thousands.
PhoneNumbers = Annotated[
    list[PhoneText],
    Meta(max_length=20, description="numbers (DIDs) this agent answers, E.164"),
]
# An installed voice (docs/models.md, "Voices"): its name or speaker, e.g. "en_US-joe-medium" or
# "joe"; stored as the voice's name. Empty: the model profile's default voice.
VoiceName = Annotated[
    str,
    Meta(
        max_length=200,
        description='an installed voice, e.g. "en_US-joe-medium" or "joe"; "": the default voice',
    ),
]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies."""


class AgentDialPolicy(Input):
    """An agent's own dial rules over the installation's (``ai_agents.dial_policy``;
    docs/scheduler.md "Dial-time rules"): a narrower country allow-list (ISO 3166 alpha-2;
    empty: the installation's) and a cap on the agent's live calls (null: the installation's)."""

    allowed_countries: Annotated[
        list[Annotated[str, Meta(pattern=r"^[A-Za-z]{2}$")]], Meta(max_length=250)
    ] = msgspec.field(default_factory=list)
    max_concurrent_calls: Annotated[int, Meta(ge=1, le=1000)] | None = None
    # What the agent does when AMD hears an answering machine on a call it placed
    # (docs/telephony.md "When a machine answers"); null: hang up, the default.
    on_machine: Literal["hang_up", "leave_message"] | None = None
    machine_message: Annotated[str, Meta(max_length=300)] | None = None


class Output(msgspec.Struct, kw_only=True):
    """Base of response bodies."""


# Agent ---------------------------------------------------------------------------------------


class AgentSetup(Input):
    """``POST /api/agents/ai/setup/``: the client's blank agent."""

    agent_name: Name
    personality_type: PersonalityType = PersonalityType.PROFESSIONAL
    voice_model: VoiceName = ""
    working_hours_start: ClockTime = "09:00"
    working_hours_end: ClockTime = "17:00"
    timezone: TimeZoneName = "UTC"
    business_info: JsonObject = msgspec.field(default_factory=dict)
    sales_goals: JsonObject = msgspec.field(default_factory=dict)
    # Optional, so bodies of the integration contract work unchanged.
    phone_numbers: PhoneNumbers = msgspec.field(default_factory=list)
    dial_policy: AgentDialPolicy = msgspec.field(default_factory=AgentDialPolicy)


class AgentUpdate(Input):
    """``PATCH /api/agents/ai/``: change the agent's settings (not its learnt state)."""

    agent_name: Name | UnsetType = UNSET
    personality_type: PersonalityType | UnsetType = UNSET
    voice_model: VoiceName | UnsetType = UNSET
    working_hours_start: ClockTime | UnsetType = UNSET
    working_hours_end: ClockTime | UnsetType = UNSET
    timezone: TimeZoneName | UnsetType = UNSET
    business_info: JsonObject | UnsetType = UNSET
    sales_goals: JsonObject | UnsetType = UNSET
    # Replaces the whole set ([] releases every number); absent leaves it as it is.
    phone_numbers: PhoneNumbers | UnsetType = UNSET
    # Replaces the whole policy ({} : the installation's rules); absent leaves it as it is.
    dial_policy: AgentDialPolicy | UnsetType = UNSET


class AgentView(Output):
    """The agent and what it has learnt."""

    id: uuid.UUID
    agent_name: str
    personality_type: PersonalityType
    voice_model: str
    working_hours_start: str
    working_hours_end: str
    timezone: str
    business_info: JsonObject
    sales_goals: JsonObject
    status: AgentStatus
    training_level: int
    training_coverage: JsonObject
    calls_handled: int
    successful_conversions: int
    conversation_memory: JsonObject
    customer_preferences: JsonObject
    performance_metrics: JsonObject
    created_at: dt.datetime
    updated_at: dt.datetime
    phone_numbers: list[str] = msgspec.field(default_factory=list)
    dial_policy: JsonObject = msgspec.field(default_factory=dict)


class ProductDetails(Input):
    """What the agent may say about the product."""

    name: ShortText = ""
    description: Note = ""
    features: list[Annotated[str, Meta(max_length=1000)]] = msgspec.field(default_factory=list)
    pricing: Note = ""
    benefits: list[Annotated[str, Meta(max_length=1000)]] = msgspec.field(default_factory=list)


#: Names integrations use for the rubric's areas (docs/api.md "Training rubric"): accepted as
#: ``training_type`` and stored as the area they mean. Compared lower case, "-" and " " as "_".
TRAINING_TYPE_SYNONYMS: dict[str, TrainingType] = {
    "objection_handling": TrainingType.OBJECTIONS,
    "objection": TrainingType.OBJECTIONS,
    "objection_responses": TrainingType.OBJECTIONS,
    "sales_script": TrainingType.SCRIPT,
    "call_script": TrainingType.SCRIPT,
    "product_knowledge": TrainingType.PRODUCT,
    "product_info": TrainingType.PRODUCT,
    "product_details": TrainingType.PRODUCT,
    "company_info": TrainingType.COMPANY,
    "company_background": TrainingType.COMPANY,
    "sales_goals": TrainingType.GOALS,
    "sales_techniques": TrainingType.TECHNIQUES,
    "technique": TrainingType.TECHNIQUES,
}


def training_type_of(text: str) -> TrainingType:
    """The rubric area ``text`` names (an area or one of its synonyms); ValueError otherwise."""
    flat = text.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return TrainingType(flat)
    except ValueError:
        pass
    if flat in TRAINING_TYPE_SYNONYMS:
        return TRAINING_TYPE_SYNONYMS[flat]
    names = ", ".join([*(t.value for t in TrainingType), *TRAINING_TYPE_SYNONYMS])
    raise ValueError(f"unknown training_type {text!r}; one of: {names}")


class TrainingCreate(Input):
    """``POST /api/agents/ai/training/``: one training session. ``training_type`` is an area
    of the rubric or a synonym of one (:data:`TRAINING_TYPE_SYNONYMS`), which the service
    stores as the area (and refuses naming the field when it is neither)."""

    training_type: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=40,
            description="script, product, objections, company, goals, techniques "
            "(or a synonym, e.g. objection_handling)",
        ),
    ]
    training_content: LongText = ""
    product_details: ProductDetails = msgspec.field(default_factory=ProductDetails)
    objection_responses: dict[Annotated[str, Meta(min_length=1, max_length=200)], Note] = (
        msgspec.field(default_factory=dict)
    )
    sales_techniques: list[Annotated[str, Meta(min_length=1, max_length=1000)]] = msgspec.field(
        default_factory=list
    )
    client_instructions: Note = ""


class TrainingView(Output):
    """A stored training session."""

    id: uuid.UUID
    training_type: TrainingType
    training_content: str
    product_details: JsonObject
    objection_responses: dict[str, str]
    sales_techniques: list[str]
    client_instructions: str
    completion_percentage: int
    level_before: int
    level_after: int
    created_at: dt.datetime


class TrainingResult(Output):
    """What one training session did to the agent."""

    training: TrainingView
    training_level: int
    status: AgentStatus
    coverage: dict[str, int]


class TrainingList(Output):
    """All training sessions, oldest first, with the agent's level."""

    items: list[TrainingView]
    training_level: int
    status: AgentStatus
    coverage: dict[str, int]


# Customers -----------------------------------------------------------------------------------


class CustomerCreate(Input):
    """A new customer."""

    phone_number: PhoneText
    name: ShortText = ""
    email: Annotated[str, Meta(max_length=320)] = ""
    company: ShortText = ""
    timezone: TimeZoneName | None = None
    interest_level: InterestLevel = InterestLevel.COLD
    call_preference_time: Annotated[str, Meta(max_length=100)] = ""
    conversation_notes: Note = ""
    preferences: JsonObject = msgspec.field(default_factory=dict)
    do_not_call: bool = False


class CustomerUpdate(Input):
    """Fields to change on a customer; absent fields stay as they are."""

    phone_number: PhoneText | UnsetType = UNSET
    name: ShortText | UnsetType = UNSET
    email: Annotated[str, Meta(max_length=320)] | UnsetType = UNSET
    company: ShortText | UnsetType = UNSET
    timezone: TimeZoneName | UnsetType | None = UNSET
    interest_level: InterestLevel | UnsetType = UNSET
    call_preference_time: Annotated[str, Meta(max_length=100)] | UnsetType = UNSET
    conversation_notes: Note | UnsetType = UNSET
    preferences: JsonObject | UnsetType = UNSET


class DoNotCall(Input):
    """Set or clear a customer's do-not-call flag."""

    do_not_call: bool = True


class CustomerView(Output):
    """A customer profile."""

    id: uuid.UUID
    phone_number: str
    name: str
    email: str
    company: str
    timezone: str | None
    interest_level: InterestLevel
    call_preference_time: str
    total_calls: int
    answered_calls: int
    total_talk_time_s: float
    last_call_at: dt.datetime | None
    last_outcome: CallOutcome | None
    conversation_notes: str
    preferences: JsonObject
    objections: list[str]
    do_not_call: bool
    converted: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    # What the post-call analysis of their recent calls learnt, newest last (docs/analysis.md).
    conversation_memory: list[JsonObject] = msgspec.field(default_factory=list)


class CustomerPage(Output):
    """One page of customers, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[CustomerView]
    next_cursor: str | None


class ImportRowError(Output):
    """Why one CSV row was not imported (row 1 is the first row after the header)."""

    row: int
    field: str
    reason: str


class ImportResult(Output):
    """What a CSV import did. Rows with errors are not written; the others are."""

    created: int
    updated: int
    errors: list[ImportRowError]
    dry_run: bool


# Calls ---------------------------------------------------------------------------------------


class StartCall(Input):
    """``POST /api/agents/ai/start-call/``: ``phone_number`` or ``customer_id`` (one of the
    client's customers; both: they must match). ``context`` is an object, or text stored as
    ``{"note": text}``. With ``scheduled_time`` the call is a due row the scheduler dials."""

    phone_number: PhoneText | None = None
    customer_id: uuid.UUID | None = None
    call_type: CallType = CallType.OUTBOUND
    context: JsonObject | Annotated[str, Meta(max_length=20_000)] = msgspec.field(
        default_factory=dict
    )
    scheduled_callback_id: uuid.UUID | None = None
    purpose: Annotated[str, Meta(max_length=500)] = ""
    # Calls outside the agent's working hours (and the customer's legal calling window, where
    # the node checks it) are refused unless the caller asks for it (docs/api.md).
    ignore_working_hours: bool = False
    scheduled_time: AwareDateTime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.context, str):
            self.context = {"note": self.context} if self.context else {}


class StartCallResult(Output):
    """The call session that start-call created, and what the telephony layer said."""

    call_id: uuid.UUID
    customer_id: uuid.UUID
    customer_created: bool
    phone_number: str
    call_type: CallType
    status: CallStatus
    failure_reason: str
    scheduled_callback_id: uuid.UUID | None
    created_at: dt.datetime


class CallOutcomeReport(Input):
    """``POST /api/agents/ai/call-outcome/``."""

    call_id: uuid.UUID
    outcome: CallOutcome
    customer_response: Note = ""
    conversation_notes: Note = ""
    callback_requested: bool = False
    callback_datetime: AwareDateTime | None = None
    callback_reason: Annotated[str, Meta(max_length=500)] = ""
    customer_satisfaction: Satisfaction | None = None
    # Objections the customer raised, by the names the agent was trained with; names found in
    # customer_response are counted too.
    objections: list[Annotated[str, Meta(min_length=1, max_length=200)]] = msgspec.field(
        default_factory=list
    )
    sentiment: Sentiment | None = None
    duration_s: Annotated[float, Meta(ge=0, le=86_400)] | None = None


class TranscriptTurn(Output):
    """One utterance of a call."""

    speaker: str
    text: str
    at: dt.datetime
    interrupted: bool = False


class CallView(Output):
    """A call in a list."""

    id: uuid.UUID
    customer_id: uuid.UUID
    phone_number: str
    call_type: CallType
    purpose: str
    status: CallStatus
    outcome: CallOutcome | None
    failure_reason: str
    sentiment: Sentiment | None
    duration_s: float | None
    customer_satisfaction: int | None
    callback_id: uuid.UUID | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None


class CallDetail(CallView):
    """A call with everything said on it."""

    context: JsonObject
    customer_response: str
    conversation_notes: str
    transcript: list[TranscriptTurn]
    recording_ref: str
    latency: JsonObject
    telephony_channel: str
    telephony_call_id: str
    customer_name: str
    # What the phone system reported (docs/telephony.md); empty / null when not known.
    did: str = ""
    amd_status: str = ""
    amd_cause: str = ""
    hangup_cause: int | None = None
    hangup_cause_text: str = ""
    dtmf: str = ""
    transferred_to: str = ""
    # The post-call analysis (docs/analysis.md): the model's answer and what was applied; null
    # until the call was analysed.
    analysis: JsonObject | None = None
    analyzed_at: dt.datetime | None = None
    # What the agent did while the call was live (docs/dialog.md "In-call actions"), in order.
    actions_taken: list[JsonObject] = msgspec.field(default_factory=list)


class CallPage(Output):
    """One page of calls, newest first."""

    items: list[CallView]
    next_cursor: str | None


# Callbacks -----------------------------------------------------------------------------------


class CallbackCreate(Input):
    """A callback to make."""

    customer_id: uuid.UUID
    scheduled_at: AwareDateTime
    reason: Annotated[str, Meta(max_length=500)] = ""
    priority: Priority = 3
    expected_outcome: Annotated[str, Meta(max_length=500)] = ""
    max_attempts: Annotated[int, Meta(ge=1, le=10)] = 3


class CallbackReschedule(Input):
    """Move a scheduled callback."""

    scheduled_at: AwareDateTime
    reason: Annotated[str, Meta(max_length=500)] | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET


class CallbackView(Output):
    """A scheduled callback."""

    id: uuid.UUID
    customer_id: uuid.UUID
    phone_number: str
    customer_name: str
    scheduled_at: dt.datetime
    reason: str
    status: CallbackStatus
    priority: int
    expected_outcome: str
    attempts: int
    max_attempts: int
    origin_call_id: uuid.UUID | None
    overdue: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    # The scheduler's (docs/scheduler.md): callback, retry, followup or scheduled; and why a
    # dial-time rule closed the row ("do_not_call: …") or last moved it ("moved: …").
    kind: str = "callback"
    closed_reason: str = ""


class CallbackPage(Output):
    """One page of callbacks, soonest first."""

    items: list[CallbackView]
    next_cursor: str | None


class CallOutcomeResult(Output):
    """What a reported outcome changed."""

    call: CallView
    customer: CustomerView
    callback: CallbackView | None
    agent_status: AgentStatus
    calls_handled: int
    successful_conversions: int


# Notes and opportunities ---------------------------------------------------------------------


class NoteCreate(Input):
    """A manual note on a customer."""

    body: Annotated[str, Meta(min_length=1, max_length=20_000)]
    call_id: uuid.UUID | None = None


class NoteView(Output):
    """A contact note."""

    id: uuid.UUID
    customer_id: uuid.UUID
    call_id: uuid.UUID | None
    kind: NoteKind
    body: str
    created_at: dt.datetime


class NotePage(Output):
    """One page of notes, newest first."""

    items: list[NoteView]
    next_cursor: str | None


class OpportunityCreate(Input):
    """A possible sale."""

    customer_id: uuid.UUID
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    estimated_value: Money = Decimal(0)
    currency: Currency = "USD"
    probability: Percent = 10
    stage: OpportunityStage = OpportunityStage.PROSPECTING


class OpportunityUpdate(Input):
    """Fields to change on an opportunity; stage changes follow the transition table."""

    title: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    estimated_value: Money | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    probability: Percent | UnsetType = UNSET
    stage: OpportunityStage | UnsetType = UNSET


class OpportunityView(Output):
    """An opportunity. ``estimated_value`` has two decimals."""

    id: uuid.UUID
    customer_id: uuid.UUID
    title: str
    estimated_value: Decimal
    currency: str
    probability: int
    stage: OpportunityStage
    created_at: dt.datetime
    updated_at: dt.datetime


class OpportunityPage(Output):
    """One page of opportunities, newest first."""

    items: list[OpportunityView]
    next_cursor: str | None


# Dashboard -----------------------------------------------------------------------------------


class CustomerStatistics(Output):
    """Customer counts, kept as running totals (no table scans)."""

    total: int
    cold: int
    warm: int
    hot: int
    converted: int
    do_not_call: int


class CallbackSummary(Output):
    """Scheduled callbacks: counts and the next few due."""

    scheduled: int
    overdue: int
    overdue_capped: bool
    upcoming: list[CallbackView]


class Performance(Output):
    """How the agent does on calls."""

    calls_handled: int
    successful_conversions: int
    conversion_rate: float
    average_satisfaction: float | None
    outcomes: dict[str, int]


class TrainingStatus(Output):
    """How far training is, per rubric area, and what to teach next."""

    training_level: int
    status: AgentStatus
    sessions: int
    coverage: dict[str, int]
    next_steps: list[str]


class Insight(Output):
    """Something the agent learnt from its calls."""

    kind: str
    message: str
    data: JsonObject


class QuickAction(Output):
    """A next step the dashboard offers, with the API call that does it."""

    action: str
    label: str
    method: str
    path: str


class Alert(Output):
    """Something that needs the client's attention."""

    level: str
    code: str
    message: str


class Dashboard(Output):
    """``GET /api/dashboard/ai-agent/``."""

    agent: AgentView
    performance: Performance
    recent_calls: list[CallView]
    customer_statistics: CustomerStatistics
    scheduled_callbacks: CallbackSummary
    training_status: TrainingStatus
    learning_insights: list[Insight]
    quick_actions: list[QuickAction]
    alerts: list[Alert]


# API keys ------------------------------------------------------------------------------------


class CreatedClient(Output):
    """A new client and its first API key (shown once, never stored in clear)."""

    client_id: uuid.UUID
    api_key: str


class ApiKeyView(Output):
    """An API key as listed: never the key itself."""

    id: uuid.UUID
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
