"""Phone numbers normalised to E.164, and bad ones named by their field."""

from __future__ import annotations

import pytest

from callagent.store.errors import ValidationFailed
from callagent.store.phone import normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 415 555 0123", "+14155550123"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["4155550123", "+1 415", "hello", "+999 1234567", "", "+1" + "5" * 20]
)
def test_invalid_phone_numbers_name_the_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone(raw, field="phone_number")
    assert caught.value.field == "phone_number"
    assert caught.value.reason
