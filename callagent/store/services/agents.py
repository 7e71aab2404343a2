"""The client's agent: setup, settings and training (docs/api.md)."""

from __future__ import annotations

import string
import uuid
from typing import Any, Protocol

import msgspec
import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import training as rubric
from callagent.store.db import Database
from callagent.store.errors import Conflict, ValidationFailed
from callagent.store.models import AgentTraining, AIAgent, PhoneNumber
from callagent.store.phone import normalize_phone
from callagent.store.schemas import (
    AgentDialPolicy,
    AgentSetup,
    AgentUpdate,
    AgentView,
    TrainingCreate,
    TrainingList,
    TrainingResult,
    training_type_of,
)
from callagent.store.services._common import (
    agent_phone_numbers,
    agent_view,
    check_timezone,
    get_agent_row,
    parse_hhmm,
    training_view,
)
from callagent.store.states import AgentStatus, check_transition

# The order in which training moves an agent forward; training never moves it back.
_STATUS_ORDER = [
    AgentStatus.TRAINING,
    AgentStatus.LEARNING,
    AgentStatus.ACTIVE,
    AgentStatus.OPTIMIZING,
]


def advance_status(current: AgentStatus, target: AgentStatus) -> AgentStatus:
    """Walk the transition table from ``current`` up to ``target`` one legal step at a time
    (a session can take an agent from training straight past 80 %)."""
    while _STATUS_ORDER.index(current) < _STATUS_ORDER.index(target):
        current = check_transition(current, _STATUS_ORDER[_STATUS_ORDER.index(current) + 1])
    return current


NUMBER_TAKEN = "is already answered by another agent of this installation"


def normalize_numbers(values: list[str]) -> list[str]:
    """The agent's numbers in E.164, each once, in the order given; a bad one is a 400 naming
    its position."""
    numbers = [normalize_phone(value, f"phone_numbers[{i}]") for i, value in enumerate(values)]
    return list(dict.fromkeys(numbers))


async def _set_numbers(session: AsyncSession, agent: AIAgent, numbers: list[str]) -> None:
    """Make ``numbers`` exactly the agent's numbers: a DID routes to one client's agent.

    A number is unique across the installation, so one inbound call has one owner: a number
    another client holds is a 409 (which client is not said). Two clients claiming the same
    number at once are decided by the unique index (IntegrityError → 409 in the caller).
    """
    rows = list(
        await session.scalars(
            select(PhoneNumber)
            .where(
                (PhoneNumber.agent_id == agent.id) | PhoneNumber.number.in_(numbers),
            )
            .with_for_update()
        )
    )
    for row in rows:
        if row.client_id != agent.client_id:
            index = numbers.index(row.number)
            raise Conflict(f"phone_numbers[{index}]: {row.number} {NUMBER_TAKEN}")
    kept = {row.number for row in rows if row.number in numbers}
    for row in rows:
        if row.number not in numbers:
            await session.delete(row)
    for number in numbers:
        if number not in kept:
            session.add(PhoneNumber(client_id=agent.client_id, agent_id=agent.id, number=number))
    await session.flush()


class VoiceChoices(Protocol):
    """The voices an agent may choose: the ones installed on this node (the composition root
    passes ``callagent.modelfiles.VoiceCatalog``; docs/models.md, "Voices")."""

    def canonical(self, choice: str) -> str | None:
        """The name of the installed voice ``choice`` names (name or speaker, any case)."""
        ...

    def describe(self) -> str:
        """The installed voices, for an error message."""
        ...


def check_voice(choice: str, voices: VoiceChoices | None) -> str:
    """What ``voice_model`` stores: ``""`` (the default voice) or an installed voice's name; a
    voice that is not installed is a 400 listing the ones that are. Without ``voices`` (an API
    run without models) the choice is stored as given."""
    text = choice.strip()
    if not text or voices is None:
        return text
    name = voices.canonical(text)
    if name is None:
        raise ValidationFailed(
            "voice_model",
            f"{text!r} is not an installed voice; installed voices: {voices.describe()}",
        )
    return name


def dial_policy_of(policy: AgentDialPolicy) -> dict[str, Any]:
    """An agent's dial policy as ``ai_agents.dial_policy`` stores it (what
    ``scheduler.rules.check`` reads): countries upper case and known to phonenumbers' metadata;
    unset parts left out."""
    countries = []
    for index, code in enumerate(policy.allowed_countries):
        region = code.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationFailed(
                f"dial_policy.allowed_countries[{index}]", f"{code!r} is no ISO 3166 country code"
            )
        countries.append(region)
    stored: dict[str, Any] = {}
    if countries:
        stored["allowed_countries"] = sorted(set(countries))
    if policy.max_concurrent_calls is not None:
        stored["max_concurrent_calls"] = policy.max_concurrent_calls
    if policy.on_machine is not None:
        stored["on_machine"] = policy.on_machine
    if policy.machine_message is not None and policy.machine_message.strip():
        stored["machine_message"] = _machine_message(policy.machine_message)
    return stored


MACHINE_MESSAGE_FIELDS = frozenset({"name", "company", "customer"})
"""What a ``dial_policy.machine_message`` may fill in (docs/api.md "Per-agent dial policy")."""


def _machine_message(text: str) -> str:
    """The message left on an answering machine, checked: only ``{name}``, ``{company}`` and
    ``{customer}`` are filled, so anything else in braces would be spoken as it is - or fail
    mid-call - and is refused here."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise ValidationFailed(
            "dial_policy.machine_message", f"unbalanced braces: {error}"
        ) from None
    unknown = sorted(fields - MACHINE_MESSAGE_FIELDS)
    if unknown:
        raise ValidationFailed(
            "dial_policy.machine_message",
            f"unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
            "allowed: {name}, {company}, {customer}",
        )
    return " ".join(text.split())


def _check_hours(start: str, end: str) -> None:
    if parse_hhmm(start) == parse_hhmm(end):
        raise ValidationFailed("working_hours_end", "must differ from working_hours_start")


async def setup_agent(
    db: Database, client_id: uuid.UUID, data: AgentSetup, voices: VoiceChoices | None = None
) -> AgentView:
    """Create the client's blank agent (status training, level 0); a second one is a 409."""
    check_timezone(data.timezone)
    voice = check_voice(data.voice_model, voices)
    _check_hours(data.working_hours_start, data.working_hours_end)
    numbers = normalize_numbers(data.phone_numbers)
    dial_policy = dial_policy_of(data.dial_policy)
    agent = AIAgent(
        client_id=client_id,
        agent_name=data.agent_name,
        personality_type=data.personality_type,
        voice_model=voice,
        working_hours_start=parse_hhmm(data.working_hours_start),
        working_hours_end=parse_hhmm(data.working_hours_end),
        timezone=data.timezone,
        business_info=data.business_info,
        sales_goals=data.sales_goals,
        status=AgentStatus.TRAINING,
        training_level=0,
        training_coverage=rubric.score(()),
        calls_handled=0,
        successful_conversions=0,
        conversation_memory={},
        customer_preferences={},
        performance_metrics={},
        dial_policy=dial_policy,
    )
    try:
        async with db.write() as session:
            existing = await session.scalar(
                select(AIAgent.id).where(AIAgent.client_id == client_id)
            )
            if existing is not None:
                raise Conflict("this client already has an agent")
            session.add(agent)
            await session.flush()
            if numbers:
                await _set_numbers(session, agent, numbers)
    except IntegrityError:  # two setups (or two claims of a number) at once: an index decides
        raise Conflict("this client already has an agent, or a number is taken") from None
    return agent_view(agent, sorted(numbers))


async def get_agent(db: Database, client_id: uuid.UUID) -> AgentView:
    """The client's agent, or NotFound."""
    async with db.read() as session:
        agent = await get_agent_row(session, client_id)
        return agent_view(agent, await agent_phone_numbers(session, agent.id))


async def update_agent(
    db: Database, client_id: uuid.UUID, data: AgentUpdate, voices: VoiceChoices | None = None
) -> AgentView:
    """Change the agent's settings; what it learnt (level, status, metrics) is not settable."""
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "timezone" in changes:
        check_timezone(changes["timezone"])
    if "voice_model" in changes:
        changes["voice_model"] = check_voice(changes["voice_model"], voices)
    numbers = changes.pop("phone_numbers", None)
    if numbers is not None:
        numbers = normalize_numbers(numbers)
    if "dial_policy" in changes:
        changes["dial_policy"] = dial_policy_of(changes["dial_policy"])
    try:
        async with db.write() as session:
            agent = await get_agent_row(session, client_id, for_update=True)
            start = changes.get("working_hours_start", agent.working_hours_start.strftime("%H:%M"))
            end = changes.get("working_hours_end", agent.working_hours_end.strftime("%H:%M"))
            _check_hours(start, end)
            for name, value in changes.items():
                if name in ("working_hours_start", "working_hours_end"):
                    value = parse_hhmm(value)
                setattr(agent, name, value)
            if numbers is not None:
                await _set_numbers(session, agent, numbers)
            await session.flush()
            return agent_view(agent, await agent_phone_numbers(session, agent.id))
    except IntegrityError:  # another client claimed one of the numbers at the same moment
        raise Conflict(f"a phone number {NUMBER_TAKEN}") from None


def _material(row: AgentTraining) -> rubric.TrainingMaterial:
    return rubric.TrainingMaterial(
        training_type=row.training_type,
        content=row.training_content,
        product_details=row.product_details,
        objection_responses=row.objection_responses,
        sales_techniques=row.sales_techniques,
    )


async def add_training(db: Database, client_id: uuid.UUID, data: TrainingCreate) -> TrainingResult:
    """Store a training session and raise the agent's level by what it adds (the rubric)."""
    try:
        # An area's synonym ("objection_handling") is stored as the area (docs/api.md).
        kind = training_type_of(data.training_type)
    except ValueError as error:
        raise ValidationFailed("training_type", str(error)) from None
    async with db.write() as session:
        # Locked so two sessions at once both count (PostgreSQL; SQLite writes are serial).
        agent = await get_agent_row(session, client_id, for_update=True)
        rows = list(
            await session.scalars(
                select(AgentTraining)
                .where(AgentTraining.agent_id == agent.id)
                .order_by(AgentTraining.id)
            )
        )
        new = AgentTraining(
            client_id=client_id,
            agent_id=agent.id,
            training_type=kind,
            training_content=data.training_content,
            product_details=msgspec.structs.asdict(data.product_details),
            objection_responses=dict(data.objection_responses),
            sales_techniques=list(data.sales_techniques),
            client_instructions=data.client_instructions,
        )
        coverage = rubric.score([_material(row) for row in [*rows, new]])
        level = rubric.level(coverage)
        new.level_before = agent.training_level
        new.level_after = level
        new.completion_percentage = rubric.area_percent(coverage, kind)
        session.add(new)
        agent.training_level = level
        agent.training_coverage = coverage
        agent.status = advance_status(agent.status, rubric.status_for_level(level))
        await session.flush()
        return TrainingResult(
            training=training_view(new),
            training_level=level,
            status=agent.status,
            coverage=coverage,
        )


async def list_trainings(db: Database, client_id: uuid.UUID) -> TrainingList:
    """Every training session of the agent, oldest first (there are few)."""
    async with db.read() as session:
        agent = await get_agent_row(session, client_id)
        rows = await session.scalars(
            select(AgentTraining)
            .where(AgentTraining.agent_id == agent.id, AgentTraining.client_id == client_id)
            .order_by(AgentTraining.id)
        )
        return TrainingList(
            items=[training_view(row) for row in rows],
            training_level=agent.training_level,
            status=agent.status,
            coverage=agent.training_coverage,
        )
