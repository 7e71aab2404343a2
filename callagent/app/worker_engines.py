"""What each engine worker loads, and the node's pool of workers (docs/inference.md): the
composition of :mod:`callagent.inference` with the engines, so it lives in ``app/``.

The factories run inside the worker process and build the same classes the in-process path
uses (``callagent.app.components.load_engines``), with the same threads: one code path for the
engines whichever process they live in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callagent.dialog.llm import LanguageModel
from callagent.inference.clients import (
    WorkerLanguageModel,
    WorkerSpeechToText,
    WorkerTextToSpeech,
    worker_voice_library,
)
from callagent.inference.llama_server import LocalServerLanguageModel
from callagent.inference.supervisor import EnginePool, EngineWorker, WorkerSpec
from callagent.inference.worker import ServedEngine
from callagent.settings import ModelSettings
from callagent.telephony.call_runner import VoiceEngines


def stt_engine(models_dir: str, profile: str, threads: int) -> ServedEngine:
    """The profile's faster-whisper model (worker side)."""
    from callagent.app.components import use_local_models_only
    from callagent.modelfiles import resolve_profile
    from callagent.voice_pipeline.stt import WhisperSettings, WhisperSpeechToText

    use_local_models_only()
    files = resolve_profile(profile, Path(models_dir))
    return ServedEngine(
        stt=WhisperSpeechToText(files.stt_dir, WhisperSettings(cpu_threads=threads))
    )


def llm_engine(
    models_dir: str, profile: str, threads: int, max_tokens: int | None = None
) -> ServedEngine:
    """The profile's GGUF chat model (worker side); ``max_tokens`` caps a reply (None: the
    LlamaSettings default)."""
    from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings
    from callagent.modelfiles import resolve_profile

    files = resolve_profile(profile, Path(models_dir))
    settings = LlamaSettings(n_threads=threads)
    if max_tokens is not None:
        settings = LlamaSettings(n_threads=threads, max_tokens=max_tokens)
    return ServedEngine(llm=LlamaCppLanguageModel(files.llm_path, settings))


def tts_engine(models_dir: str, profile: str) -> ServedEngine:
    """The profile's default voice, and every installed voice on demand (worker side)."""
    from concurrent.futures import ThreadPoolExecutor

    from callagent.app.components import voice_library
    from callagent.modelfiles import resolve_profile
    from callagent.voice_pipeline.tts import PiperTextToSpeech

    files = resolve_profile(profile, Path(models_dir))
    # One synthesis thread for every voice, as in-process (DESIGN.md "Known traps").
    synthesis = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
    tts = PiperTextToSpeech(files.tts_model, files.tts_config, executor=synthesis)
    settings = ModelSettings(profile=profile, models_dir=models_dir)
    return ServedEngine(tts=tts, voices=voice_library(settings, tts, synthesis))


def worker_specs(settings: ModelSettings) -> dict[str, WorkerSpec]:
    """The three workers of a node, from the models settings."""
    models_dir = str(Path(settings.models_dir).resolve())
    common: dict[str, Any] = {"models_dir": models_dir, "profile": settings.profile}
    return {
        "stt": WorkerSpec(
            "stt",
            "callagent.app.worker_engines:stt_engine",
            {**common, "threads": settings.stt_threads},
        ),
        "llm": WorkerSpec(
            "llm",
            "callagent.app.worker_engines:llm_engine",
            {**common, "threads": settings.llm_threads},
        ),
        "tts": WorkerSpec("tts", "callagent.app.worker_engines:tts_engine", common),
    }


async def start_worker_engines(
    settings: ModelSettings,
    specs: dict[str, WorkerSpec] | None = None,
    *,
    llm: LanguageModel | None = None,
) -> VoiceEngines:
    """Start the engine workers, wait until each has loaded its model, and give the engines
    the calls use: clients of those workers, with the pool attached for ``/health``, metrics
    and shutdown. :class:`~callagent.inference.supervisor.WorkerStartError` when one did not
    come up. With ``llm`` (an LLM server's client, docs/models.md "LLM server") no LLM worker
    is started: the server is already a process of its own."""
    from callagent.app.components import voice_catalog

    specs = specs or worker_specs(settings)
    if llm is not None:
        specs = {name: spec for name, spec in specs.items() if name != "llm"}
    pool = EnginePool({name: EngineWorker(spec) for name, spec in specs.items()})
    if isinstance(llm, LocalServerLanguageModel):
        pool.watch("llm", llm.server)  # its state and restarts on /health and in metrics
    await pool.start()
    tts_worker = pool.workers["tts"]
    tts = WorkerTextToSpeech(tts_worker, int(tts_worker.info["sample_rate"]))
    catalog = voice_catalog(settings)
    from callagent.voice_pipeline.tts import VoiceFiles

    voices = worker_voice_library(
        tts_worker,
        [
            VoiceFiles(v.name, v.engine, v.model_path, v.config_path, v.aliases)
            for v in catalog.voices
        ],
        tts,
        catalog.default,
    )
    return VoiceEngines(
        stt=WorkerSpeechToText(pool.workers["stt"]),
        tts=tts,
        llm=llm if llm is not None else WorkerLanguageModel(pool.workers["llm"]),
        voices=voices,
        pool=pool,
    )
