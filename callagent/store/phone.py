"""Phone numbers, parsed and normalised with ``phonenumbers`` (docs/api.md).

Numbers are stored in E.164 (``+14155550123``) so one person is one customer however the CRM
wrote the number. Numbers must be international (start with ``+`` and the country code): a
national number is ambiguous across an installation's clients.
"""

from __future__ import annotations

import phonenumbers

from callagent.store.errors import ValidationFailed


def normalize_phone(value: str, field: str = "phone_number") -> str:
    """``value`` in E.164, or ValidationFailed naming ``field`` and the reason."""
    text = value.strip()
    if text.startswith("00"):  # the international prefix many countries dial
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as error:
        reason = {
            phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
                "not an international number: start with + and the country code"
            ),
            phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
            phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
            phonenumbers.NumberParseException.TOO_LONG: "too long",
        }.get(error.error_type, "not a phone number")
        raise ValidationFailed(field, reason) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(field, "not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
