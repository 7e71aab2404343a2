"""Settings → what the components are built from: the models, the agent, the pipeline's
parameters (DESIGN.md: components take explicit parameter objects, never the settings)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from callagent.app.llm_server import close_llm, start_llm
from callagent.diagnostics.selfcheck import require_llm_runs
from callagent.dialog.agent_profile import DEFAULT_AGENT, AgentProfile, load_agent_profile
from callagent.dialog.analysis import JsonModelSettings, LlamaJsonModel
from callagent.dialog.llm import LanguageModel, LlamaCppLanguageModel, LlamaSettings
from callagent.dialog.prompt import build_system_prompt
from callagent.modelfiles import VoiceCatalog, installed_voices, resolve_profile
from callagent.settings import ModelSettings, Settings
from callagent.telephony.call_runner import VoiceEngines
from callagent.voice_pipeline.pipeline import CallLimits, PipelineSettings
from callagent.voice_pipeline.stt import WhisperSettings, WhisperSpeechToText
from callagent.voice_pipeline.tts import PiperTextToSpeech, VoiceFiles, VoiceLibrary
from callagent.voice_pipeline.turns import TurnSettings
from callagent.voice_pipeline.vad import VadSettings

log = logging.getLogger(__name__)


def use_local_models_only() -> None:
    """Never let a library reach for a model hub: the models folder is all there is
    (air-gapped installs, docs/models.md).

    huggingface_hub reads ``HF_HUB_OFFLINE`` when it is first imported (by faster-whisper, when
    the STT engine is built), so this runs before any engine is loaded. A value the operator
    set is kept.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_engines(settings: ModelSettings, llm: LanguageModel | None = None) -> VoiceEngines:
    """Check the profile's files (size; sha256 once per file version) and load each model;
    ``llm``, an LLM server's client, replaces the in-process LLM (docs/models.md, "LLM
    server")."""
    use_local_models_only()
    started = time.perf_counter()
    profile = resolve_profile(settings.profile, Path(settings.models_dir), verify="full")
    stt = WhisperSpeechToText(profile.stt_dir, WhisperSettings(cpu_threads=settings.stt_threads))
    # One synthesis thread for every voice: on 2 cores a second one would take the LLM's core
    # (DESIGN.md, "Known traps").
    synthesis = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
    tts = PiperTextToSpeech(profile.tts_model, profile.tts_config, executor=synthesis)
    voices = voice_library(settings, tts, synthesis)
    if llm is None:
        llm = LlamaCppLanguageModel(profile.llm_path, LlamaSettings(n_threads=settings.llm_threads))
    log.info(
        "models of profile %r loaded in %.1f s (stt %s, llm %s, tts %s; voices %s)",
        settings.profile,
        time.perf_counter() - started,
        profile.stt_model,
        profile.llm_model,
        profile.tts_voice,
        ", ".join(voices.names),
    )
    return VoiceEngines(stt=stt, tts=tts, llm=llm, voices=voices)


def voice_catalog(settings: ModelSettings) -> VoiceCatalog:
    """The voices installed in the models folder, the profile's ``tts`` the default: what an
    agent's ``voice_model`` may name (docs/models.md, "Voices")."""
    return installed_voices(Path(settings.models_dir), settings.profile)


def voice_library(
    settings: ModelSettings, default: PiperTextToSpeech, executor: ThreadPoolExecutor
) -> VoiceLibrary:
    """Every installed voice, ``default`` (already loaded) for the profile's; the others load
    when a call first needs them."""
    catalog = voice_catalog(settings)
    return VoiceLibrary(
        [
            VoiceFiles(v.name, v.engine, v.model_path, v.config_path, v.aliases)
            for v in catalog.voices
        ],
        default,
        default_name=catalog.default,
        executor=executor,
    )


def analysis_model(settings: Settings) -> LlamaJsonModel:
    """The post-call analysis model: the profile's LLM file in a second ``Llama`` of its own,
    loaded when the first job runs (docs/analysis.md, "The model")."""
    profile = resolve_profile(settings.models.profile, Path(settings.models.models_dir))
    analysis = settings.analysis
    return LlamaJsonModel(
        profile.llm_path,
        JsonModelSettings(
            n_ctx=analysis.context_tokens,
            n_threads=settings.models.llm_threads,
            max_tokens=analysis.max_tokens,
            nice=analysis.nice,
        ),
    )


def pipeline_settings(settings: Settings) -> PipelineSettings:
    """The pipeline's parameter object, from the turn-taking settings."""
    turn_taking = settings.turn_taking
    return PipelineSettings(
        vad=VadSettings(aggressiveness=turn_taking.vad_aggressiveness),
        turns=TurnSettings(
            end_silence_s=turn_taking.end_silence_s,
            use_words=turn_taking.end_of_turn_words,
            complete_silence_s=turn_taking.complete_silence_s,
            incomplete_silence_s=turn_taking.incomplete_silence_s,
            speculate=turn_taking.speculate,
        ),
        limits=CallLimits(
            silence_prompt_s=turn_taking.silence_prompt_s or None,
            silence_end_s=turn_taking.silence_end_s,
            max_call_s=turn_taking.max_call_s or None,
            silence_prompt=turn_taking.silence_prompt,
            silence_goodbye=turn_taking.silence_goodbye,
            max_call_goodbye=turn_taking.max_call_goodbye,
        ),
    )


def agent_profile(settings: Settings) -> AgentProfile:
    """The configured agent, or the built-in demo agent."""
    if settings.agent.file is None:
        return DEFAULT_AGENT
    return load_agent_profile(Path(settings.agent.file))


def check_llm_runs_here(settings: ModelSettings) -> None:
    """Generate a few tokens in a child process first: a llama.cpp build that traps on this
    CPU then ends that child, not the server (docs/install.md)."""
    profile = resolve_profile(settings.profile, Path(settings.models_dir), verify=True)
    require_llm_runs(profile.llm_path, threads=settings.llm_threads)


async def prepare(
    settings: Settings, *, workers: bool = False
) -> tuple[VoiceEngines, AgentProfile]:
    """Load the models (in a thread: it takes seconds) and warm the LLM's prompt cache.

    With ``workers`` each engine loads in a supervised worker process of its own instead
    (docs/inference.md); the engines' ``pool`` is then the caller's to close.
    """
    profile = agent_profile(settings)
    # With [llm] server = "local" or an endpoint the LLM is a server (started here when it is
    # ours) instead of a model of this process (docs/models.md, "LLM server").
    served = await start_llm(settings)
    try:
        engines = await _load(settings, workers, served)
    except BaseException:
        if served is not None:
            await close_llm(served)
        raise
    try:
        await engines.llm.warm_up(build_system_prompt(profile))
    except BaseException:
        if engines.pool is not None:
            await engines.pool.close()
        await close_llm(engines.llm)
        raise
    return engines, profile


async def _load(settings: Settings, workers: bool, served: LanguageModel | None) -> VoiceEngines:
    if settings.models.startup_check and served is None:
        await asyncio.to_thread(check_llm_runs_here, settings.models)
    if not workers:
        engines = await asyncio.to_thread(load_engines, settings.models, served)
    else:
        from callagent.app.worker_engines import start_worker_engines

        use_local_models_only()  # the workers inherit the environment
        # Size and sha256 checked here once, as in-process; the workers then trust the files.
        models = settings.models
        await asyncio.to_thread(
            lambda: resolve_profile(models.profile, Path(models.models_dir), verify="full")
        )
        engines = await start_worker_engines(settings.models, llm=served)
    return engines
