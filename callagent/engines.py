"""Loading the speech and language models of a profile into shared engines."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings
from callagent.modelfiles import resolve_profile
from callagent.settings import ModelSettings
from callagent.telephony.call_runner import VoiceEngines
from callagent.voice_pipeline.stt import WhisperSettings, WhisperSpeechToText
from callagent.voice_pipeline.tts import PiperTextToSpeech

log = logging.getLogger(__name__)


def load_engines(settings: ModelSettings) -> VoiceEngines:
    """Check the profile's files (size; sha256 once per file version) and load each model."""
    started = time.perf_counter()
    profile = resolve_profile(settings.profile, Path(settings.models_dir), verify="full")
    stt = WhisperSpeechToText(profile.stt_dir, WhisperSettings(cpu_threads=settings.stt_threads))
    tts = PiperTextToSpeech(profile.tts_model, profile.tts_config)
    llm = LlamaCppLanguageModel(profile.llm_path, LlamaSettings(n_threads=settings.llm_threads))
    log.info(
        "models of profile %r loaded in %.1f s (stt %s, llm %s, tts %s)",
        settings.profile,
        time.perf_counter() - started,
        profile.stt_model,
        profile.llm_model,
        profile.tts_voice,
    )
    return VoiceEngines(stt=stt, tts=tts, llm=llm)
