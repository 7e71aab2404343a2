"""The training rubric: how training sessions become a training level.

Documented in docs/api.md ("Training rubric"). It is deterministic and cumulative: the level is
the rubric's score of *everything* the agent has been taught so far, so each session raises the
level by exactly what it adds, and teaching the same thing twice adds nothing.

| area        | points | how they are earned                                                  |
| ----------- | -----: | -------------------------------------------------------------------- |
| script      |     25 | 1 per 8 words of ``script`` session content                          |
| product     |     20 | features 5, pricing 5, benefits 5, 1 per 20 words of product content |
| objections  |     20 | 4 per distinct objection with an answer (any session type)            |
| company     |     10 | 1 per 10 words of ``company`` session content                        |
| goals       |     10 | 1 per 5 words of ``goals`` session content                           |
| techniques  |     15 | 3 per distinct sales technique (any session type)                    |

Each area is capped at its points; the level is the sum, 0–100. The agent becomes ``learning``
at 20 and ``active`` at 80.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callagent.store.states import AgentStatus, TrainingType

AREA_POINTS: Mapping[TrainingType, int] = {
    TrainingType.SCRIPT: 25,
    TrainingType.PRODUCT: 20,
    TrainingType.OBJECTIONS: 20,
    TrainingType.COMPANY: 10,
    TrainingType.GOALS: 10,
    TrainingType.TECHNIQUES: 15,
}
LEARNING_AT = 20
ACTIVE_AT = 80

# Words per point for the areas that are scored on free text.
_WORDS_PER_POINT: Mapping[TrainingType, int] = {
    TrainingType.SCRIPT: 8,
    TrainingType.PRODUCT: 20,
    TrainingType.COMPANY: 10,
    TrainingType.GOALS: 5,
}
_PRODUCT_CONTENT_POINTS = 5


@dataclass(frozen=True)
class TrainingMaterial:
    """What one session taught, as the rubric sees it."""

    training_type: TrainingType
    content: str = ""
    product_details: Mapping[str, Any] = field(default_factory=dict)
    objection_responses: Mapping[str, str] = field(default_factory=dict)
    sales_techniques: Iterable[str] = ()


def _words(text: str) -> int:
    return len(text.split())


def score(sessions: Iterable[TrainingMaterial]) -> dict[str, int]:
    """Points per area for everything in ``sessions`` (order does not matter)."""
    words = dict.fromkeys(_WORDS_PER_POINT, 0)
    has_features = has_pricing = has_benefits = False
    objections: set[str] = set()
    techniques: set[str] = set()
    for session in sessions:
        if session.training_type in words:
            words[session.training_type] += _words(session.content)
        details = session.product_details
        has_features |= any(str(f).strip() for f in details.get("features") or ())
        has_pricing |= bool(str(details.get("pricing") or "").strip())
        has_benefits |= any(str(b).strip() for b in details.get("benefits") or ())
        objections |= {
            name.strip().lower()
            for name, answer in session.objection_responses.items()
            if name.strip() and str(answer).strip()
        }
        techniques |= {t.strip().lower() for t in session.sales_techniques if t.strip()}

    points = {
        TrainingType.SCRIPT: words[TrainingType.SCRIPT] // _WORDS_PER_POINT[TrainingType.SCRIPT],
        TrainingType.PRODUCT: 5 * (has_features + has_pricing + has_benefits)
        + min(
            _PRODUCT_CONTENT_POINTS,
            words[TrainingType.PRODUCT] // _WORDS_PER_POINT[TrainingType.PRODUCT],
        ),
        TrainingType.OBJECTIONS: 4 * len(objections),
        TrainingType.COMPANY: words[TrainingType.COMPANY] // _WORDS_PER_POINT[TrainingType.COMPANY],
        TrainingType.GOALS: words[TrainingType.GOALS] // _WORDS_PER_POINT[TrainingType.GOALS],
        TrainingType.TECHNIQUES: 3 * len(techniques),
    }
    return {area.value: min(points[area], cap) for area, cap in AREA_POINTS.items()}


def level(coverage: Mapping[str, int]) -> int:
    """The training level, 0–100, of a coverage from :func:`score`."""
    return min(100, sum(coverage.values()))


def area_percent(coverage: Mapping[str, int], area: TrainingType) -> int:
    """How much of one area is covered, 0–100."""
    return coverage.get(area.value, 0) * 100 // AREA_POINTS[area]


def status_for_level(training_level: int) -> AgentStatus:
    """The status the training level earns (optimizing is earned by calls, not training)."""
    if training_level >= ACTIVE_AT:
        return AgentStatus.ACTIVE
    if training_level >= LEARNING_AT:
        return AgentStatus.LEARNING
    return AgentStatus.TRAINING


def next_steps(coverage: Mapping[str, int]) -> list[str]:
    """What to teach next: the areas with the most points still to earn, first."""
    missing = sorted(
        ((cap - coverage.get(area.value, 0), area) for area, cap in AREA_POINTS.items()),
        key=lambda item: (-item[0], item[1].value),
    )
    hints = {
        TrainingType.SCRIPT: "add call script text (training_type 'script')",
        TrainingType.PRODUCT: "add product features, pricing and benefits",
        TrainingType.OBJECTIONS: "add answers to common objections",
        TrainingType.COMPANY: "describe the company (training_type 'company')",
        TrainingType.GOALS: "describe the sales goals (training_type 'goals')",
        TrainingType.TECHNIQUES: "list the sales techniques to use",
    }
    return [f"{hints[area]}: {gap} points to earn" for gap, area in missing if gap > 0]
