"""The transfer allow-list: the only places a call may be handed over to.

A caller must never be able to talk the agent into dialing an arbitrary number (toll fraud). So a
hand-over names a *target*, never a number: the operator lists ``name=number`` pairs in
``asterisk.transfer_targets``, the dialplan's ``[callagent-transfer]`` context holds exactly those
names (:mod:`.config`), and :class:`TransferAllowList` refuses every other name before the AMI
client asks Asterisk anything. Two independent fences: a bug in one still leaves the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from callagent.telephony.asterisk.config import TRANSFER_CONTEXT

_NAME = re.compile(r"[a-z][a-z0-9_]{1,31}")


class TransferRefused(ValueError):
    """The requested target is not on the allow-list; nothing was sent to Asterisk."""


@dataclass(frozen=True, slots=True)
class TransferTarget:
    """Where a hand-over goes in the dialplan: ``context``, ``extension``, priority 1."""

    name: str
    context: str
    extension: str


class TransferAllowList:
    """Maps allowed target names to their dialplan location; refuses anything else."""

    def __init__(self, targets: Mapping[str, str], context: str = TRANSFER_CONTEXT) -> None:
        """``targets`` is ``{name: number}`` (``AsteriskSettings.transfer_map()``); only the
        names matter here - the numbers live in the dialplan, out of the agent's reach."""
        for name in targets:
            if not _NAME.fullmatch(name):
                raise ValueError(f"transfer target name {name!r} is not a plain name")
        self._names = frozenset(targets)
        self._context = context

    @property
    def names(self) -> frozenset[str]:
        """The allowed target names."""
        return self._names

    def resolve(self, name: str) -> TransferTarget:
        """The dialplan location of ``name``; :class:`TransferRefused` if it is not allowed.

        Matching is exact: no case folding, no trimming, so "Sales " or "sales\\r\\n..." never
        slip through to an AMI header.
        """
        if name not in self._names:
            allowed = ", ".join(sorted(self._names)) or "none configured"
            raise TransferRefused(
                f"transfer to {name!r} refused: not on the allow-list ({allowed})"
            )
        return TransferTarget(name=name, context=self._context, extension=name)
