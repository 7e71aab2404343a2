"""Call purposes: how start-call's text is read, and what each purpose allows
(docs/dialog.md "Call purposes")."""

from __future__ import annotations

import pytest

from callagent.dialog.actions import ActionKind
from callagent.dialog.purposes import (
    ALWAYS_ALLOWED,
    PURPOSES,
    CallBrief,
    CallPurpose,
    check_purpose,
    parse_purpose,
)


@pytest.mark.parametrize(
    ("text", "call_type", "expected"),
    [
        ("follow_up", "outbound", CallBrief(CallPurpose.FOLLOW_UP)),
        ("Follow-up", "outbound", CallBrief(CallPurpose.FOLLOW_UP)),
        ("customer support", "outbound", CallBrief(CallPurpose.CUSTOMER_SUPPORT)),
        (
            "renewal_reminder: your home insurance",
            "outbound",
            CallBrief(CallPurpose.RENEWAL_REMINDER, "your home insurance"),
        ),
        (
            "appointment_booking - the annual check-up",
            "outbound",
            CallBrief(CallPurpose.APPOINTMENT_BOOKING, "the annual check-up"),
        ),
        # Free text keeps working: it is what the call is about, the call type says the rest.
        (
            "your solar enquiry",
            "outbound",
            CallBrief(CallPurpose.SALES_OUTREACH, "your solar enquiry"),
        ),
        ("the quote", "followup", CallBrief(CallPurpose.FOLLOW_UP, "the quote")),
        ("", "scheduled", CallBrief(CallPurpose.FOLLOW_UP)),
        ("", "inbound", CallBrief(None)),
        (
            "Renewal: 2027 prices",
            "outbound",
            CallBrief(CallPurpose.SALES_OUTREACH, "Renewal: 2027 prices"),
        ),
    ],
)
def test_a_calls_purpose_text_is_read_as_a_purpose_and_what_it_is_about(
    text: str, call_type: str, expected: CallBrief
) -> None:
    assert parse_purpose(text, call_type) == expected


@pytest.mark.parametrize("text", ["sales_outrech", "renew_reminder: the policy", "follow_ups"])
def test_a_misspelt_purpose_is_an_error_naming_the_known_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"unknown call purpose .*follow_up"):
        check_purpose(text)


@pytest.mark.parametrize("text", ["follow_up", "Customer support: the inverter", "the quote", ""])
def test_known_purposes_and_free_text_pass_the_check(text: str) -> None:
    check_purpose(text)


def test_each_purpose_allows_its_own_actions_and_never_takes_away_the_callers_rights() -> None:
    support = CallBrief(CallPurpose.CUSTOMER_SUPPORT)
    assert support.allows(ActionKind.SCHEDULE_CALLBACK)
    assert support.allows(ActionKind.TRANSFER)
    assert not support.allows(ActionKind.BOOK_APPOINTMENT)  # no demo pushed on a support call
    assert not support.allows(ActionKind.SET_INTEREST)
    assert CallBrief(CallPurpose.APPOINTMENT_BOOKING).allows(ActionKind.BOOK_APPOINTMENT)
    assert not CallBrief(CallPurpose.RENEWAL_REMINDER).allows(ActionKind.BOOK_APPOINTMENT)
    assert all(CallBrief(None).allows(kind) for kind in ActionKind)
    for purpose in CallPurpose:
        brief = CallBrief(purpose)
        assert all(brief.allows(kind) for kind in ALWAYS_ALLOWED)
        assert {ActionKind.SET_DO_NOT_CALL, ActionKind.TRANSFER} <= ALWAYS_ALLOWED
        assert PURPOSES[purpose].objective
