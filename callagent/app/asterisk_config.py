"""``callagent asterisk-config``: Asterisk's configuration files from the settings
(docs/telephony.md: nobody edits a ``.conf`` file)."""

from __future__ import annotations

from pathlib import Path

from callagent.app.errors import UsageError
from callagent.settings import Settings
from callagent.telephony.asterisk.config import (
    AsteriskConfigError,
    render_asterisk_config,
    write_asterisk_config,
)
from callagent.telephony.asterisk.config_check import check_asterisk_config


def write_asterisk_config_files(settings: Settings, out: Path) -> int:
    """Render, check and write Asterisk's configuration into folder ``out``, printing each
    file's path. Returns the exit code."""
    try:
        files = render_asterisk_config(
            settings.asterisk, audiosocket_port=settings.network.audiosocket_port
        )
    except AsteriskConfigError as error:
        raise UsageError(f"cannot render the Asterisk configuration: {error}") from error
    problems = check_asterisk_config(files)
    if problems:  # a bug in the templates, never the operator's: refuse to write it
        raise UsageError("rendered Asterisk configuration failed its check: " + "; ".join(problems))
    for path in write_asterisk_config(files, out):
        print(path)
    return 0
