"""Call recordings: both sides on one timeline, retention, and readable after a kill."""

from __future__ import annotations

import os
import stat
import time
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from callagent.telephony.recording import (
    CallRecorder,
    delete_expired_recordings,
    repair_recording,
)


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


def test_a_recorder_never_started_leaves_no_file(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4())
    recorder.agent_audio(bytes(320))  # before start(): nowhere to write it
    recorder.close()
    assert list(tmp_path.iterdir()) == []


def test_the_agent_before_the_callers_first_frame_is_recorded_against_silence(
    tmp_path: Path,
) -> None:
    """The recording starts when the call connects: the agent greets at once, and Asterisk
    sends the caller's frames only once the caller's RTP arrives (DESIGN.md "Known traps")."""
    recorder = CallRecorder(tmp_path, uuid.uuid4())
    recorder.start(8000)
    agent = np.full(160, -2000, dtype="<i2").tobytes()
    caller = np.full(160, 1000, dtype="<i2").tobytes()
    for _ in range(100):  # two seconds of greeting, no caller frame
        recorder.agent_audio(agent)
    for _ in range(50):  # then the caller's media starts
        recorder.agent_audio(agent)
        recorder.caller_audio(caller, 8000)
    recorder.close()
    with wave.open(str(tmp_path / recorder.reference)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(samples) == 150 * 160
    assert (samples[:, 1] == -2000).all()
    # The caller's side is silent while nothing came, then on time within 0.2 s.
    caller_side = samples[:, 0]
    first = int(np.argmax(caller_side != 0))
    assert abs(first - 100 * 160) <= 0.2 * 8000
    assert (caller_side[:first] == 0).all()
    assert (caller_side[first : first + 50 * 160] == 1000).all()


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


def record(recorder: CallRecorder, seconds: float) -> None:
    """Both sides of ``seconds`` of a call at 8 kHz: caller 1000, agent -2000."""
    caller = np.full(160, 1000, dtype="<i2").tobytes()
    agent = np.full(160, -2000, dtype="<i2").tobytes()
    for _ in range(round(seconds * 50)):
        recorder.caller_audio(caller, 8000)
        recorder.agent_audio(agent)


def killed_copy(recorder: CallRecorder, folder: Path) -> Path:
    """The file as a ``kill -9`` would leave it now: what reached the disk, not what the
    process still buffered (read through another handle; the recorder is never closed)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / recorder.path.name
    copy.write_bytes(recorder.path.read_bytes())
    return copy


def test_a_recording_left_by_a_kill_is_readable_up_to_the_last_second(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "recordings", uuid.uuid4())
    record(recorder, 2.5)
    left = killed_copy(recorder, tmp_path / "killed")
    # The header was rewritten after each second of audio: without any repair, a reader
    # sees the call up to the last whole second (Python's wave alone would claim one frame).
    audio, rate = soundfile.read(left, dtype="int16")
    assert (rate, audio.shape) == (8000, (2 * 8000, 2))
    assert (audio[:, 0] == 1000).all()
    assert (audio[:, 1] == -2000).all()
    recorder.close()


def test_repair_recovers_a_killed_recording_to_its_last_whole_frame(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "recordings", uuid.uuid4())
    record(recorder, 2.5)
    left = killed_copy(recorder, tmp_path / "killed")
    with left.open("ab") as file:
        file.write(b"\x01\x02\x03")  # the kill cut a frame in half
    on_disk = (left.stat().st_size - 44) // 4  # whole stereo frames that reached the disk

    seconds = repair_recording(left)

    audio, rate = soundfile.read(left, dtype="int16")
    assert rate == 8000
    assert seconds == pytest.approx(on_disk / 8000)
    assert len(audio) == on_disk > 2 * 8000  # more than the header knew before the repair
    assert (audio[:, 0] == 1000).all()
    assert (audio[:, 1] == -2000).all()
    assert left.stat().st_size == 44 + 4 * on_disk
    recorder.close()


def test_repair_leaves_a_finished_recording_as_it_is_and_refuses_what_is_not_one(
    tmp_path: Path,
) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4())
    record(recorder, 0.5)
    recorder.close()
    finished = recorder.path.read_bytes()
    assert repair_recording(recorder.path) == pytest.approx(0.5)
    assert recorder.path.read_bytes() == finished
    empty = tmp_path / "killed-before-the-header.wav"
    empty.write_bytes(b"")
    assert repair_recording(empty) is None
    assert empty.read_bytes() == b""


def test_a_recording_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # Calls are personal data: however permissive the process's umask, nobody else reads them.
    previous = os.umask(0o022)
    try:
        recorder = CallRecorder(tmp_path / "recordings", uuid.uuid4())
        recorder.caller_audio(bytes(320), 8000)
        recorder.agent_audio(bytes(320))
        recorder.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(recorder.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(recorder.folder.stat().st_mode) == 0o700
