"""Call recordings for tests of what serves them: written by the real recorder
(``telephony/recording.py``), as the call runner writes them."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from callagent.telephony.recording import CallRecorder

RATE = 8000
FRAME = RATE // 50  # 20 ms, as AudioSocket sends them


def write_recording(folder: Path, call_id: uuid.UUID, seconds: float = 1.0) -> Path:
    """``<call id>.wav`` in ``folder``: a 440 Hz caller tone on the left channel and a 660 Hz
    agent tone on the right, ``seconds`` long at 8 kHz."""
    recorder = CallRecorder(folder, call_id)
    recorder.start(RATE)
    t = np.arange(FRAME) / RATE
    for n in range(round(seconds * 50)):
        at = t + n * FRAME / RATE
        recorder.caller_audio((3000 * np.sin(2 * np.pi * 440 * at)).astype("<i2").tobytes(), RATE)
        recorder.agent_audio((3000 * np.sin(2 * np.pi * 660 * at)).astype("<i2").tobytes())
    recorder.close()
    return recorder.path
