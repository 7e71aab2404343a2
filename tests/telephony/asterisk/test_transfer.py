"""The transfer allow-list: a hand-over names an allowed target, matched exactly; any other name
is refused before AMI is asked (docs/telephony.md, "Hand-over, hang-up, DTMF")."""

from __future__ import annotations

import pytest

from callagent.telephony.asterisk.config import TRANSFER_CONTEXT
from callagent.telephony.asterisk.transfer import (
    TransferAllowList,
    TransferRefused,
    TransferTarget,
)

TARGETS = {"sales": "+4930111", "support": "0301234"}


def test_an_allowed_name_resolves_to_its_dialplan_extension() -> None:
    allow = TransferAllowList(TARGETS)
    assert allow.names == frozenset({"sales", "support"})
    assert allow.resolve("sales") == TransferTarget(
        name="sales", context=TRANSFER_CONTEXT, extension="sales"
    )


@pytest.mark.parametrize(
    "name", ["Sales", "sales ", "+4930111", "sales\r\nAction: Originate", "billing", ""]
)
def test_any_other_name_is_refused(name: str) -> None:
    with pytest.raises(TransferRefused, match=r"not on the allow-list \(sales, support\)"):
        TransferAllowList(TARGETS).resolve(name)


def test_without_targets_every_name_is_refused() -> None:
    with pytest.raises(TransferRefused, match="none configured"):
        TransferAllowList({}).resolve("sales")


@pytest.mark.parametrize("name", ["Sales", "s", "1sales", "sales-team", "x" * 33])
def test_a_target_name_must_be_a_plain_name(name: str) -> None:
    with pytest.raises(ValueError, match="not a plain name"):
        TransferAllowList({name: "+4930111"})
