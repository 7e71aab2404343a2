"""``callagent call --simulate`` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from callagent.modelfiles.manifest import PACKAGED_MANIFEST

REPO = Path(__file__).resolve().parents[2]


def callagent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callagent.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def test_an_unreadable_caller_recording_is_one_line_before_models_load(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    (empty / "manifest.json").write_text(PACKAGED_MANIFEST.read_text())
    done = callagent("call", "--simulate", str(tmp_path / "x.wav"), "--models-dir", str(empty))
    assert done.returncode == 2
    assert "cannot read caller audio" in done.stderr
