"""Call recordings: both sides on one timeline, and retention."""

from __future__ import annotations

import os
import time
import uuid
import wave
from pathlib import Path

import numpy as np

from callagent.telephony.recording import CallRecorder, delete_expired_recordings


def test_caller_left_agent_right_on_the_same_20_ms_timeline(tmp_path: Path) -> None:
    call_id = uuid.uuid4()
    recorder = CallRecorder(tmp_path / "recordings", call_id)
    caller = np.full(160, 1000, dtype="<i2").tobytes()
    agent = np.full(160, -2000, dtype="<i2").tobytes()
    for _ in range(50):  # one second of call
        recorder.caller_audio(caller, 8000)
        recorder.agent_audio(agent)
    recorder.caller_audio(caller, 8000)  # the caller's side is a frame longer
    recorder.close()
    assert recorder.reference == f"{call_id}.wav"
    with wave.open(str(tmp_path / "recordings" / recorder.reference)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(samples) == 51 * 160
    assert (samples[:-160, 0] == 1000).all()
    assert (samples[:-160, 1] == -2000).all()
    assert (samples[-160:, 1] == 0).all()  # the shorter side is padded with silence


def test_a_call_without_audio_leaves_no_file(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4())
    recorder.agent_audio(bytes(320))  # the agent never speaks before the caller's first frame
    recorder.close()
    assert list(tmp_path.iterdir()) == []


def test_recordings_older_than_the_retention_period_are_deleted(tmp_path: Path) -> None:
    old, new = tmp_path / "old.wav", tmp_path / "new.wav"
    for path in (old, new):
        path.write_bytes(b"RIFF")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    assert delete_expired_recordings(tmp_path, retention_days=7) == 1
    assert not old.exists()
    assert new.exists()
    assert delete_expired_recordings(tmp_path, retention_days=0) == 0  # 0 keeps everything
