"""What the worker reads afresh between batches: the instruction set and the classifier.

Both are looked up at most every `refresh_s` seconds, so an instruction an operator adds, or a
model version that gets activated, is used from the next batch on without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from models import instruction_store
from models.classifier import Classifier, StandInClassifier
from models.instructions import InstructionSet
from pipeline.settings import Settings

if TYPE_CHECKING:  # torch and transformers load only where a real model runs (10+ s of imports)
    from connectors.entities import EntityRecogniser
    from models.executor import ExecutorOptions, InstructionExecutor

T = TypeVar("T")
log = logging.getLogger(__name__)


class _Refreshing(Generic[T]):
    def __init__(self, load: Callable[[], T], refresh_s: float) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._value: T | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def loaded(self) -> bool:
        return self._value is not None

    def current(self) -> T:
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._loaded_at >= self._refresh_s:
                self._value = self._load()
                self._loaded_at = now
            return self._value


class InstructionProvider(_Refreshing[InstructionSet]):
    """Built-in YAML instructions, overridden and extended by rows of the `instructions` table."""

    def __init__(self, engine: Engine, refresh_s: float = 5.0) -> None:
        super().__init__(lambda: instruction_store.current(engine), refresh_s)


def entity_recogniser(settings: Settings) -> EntityRecogniser:
    """The SEC directory (when the file is there) plus the project's aliases; loaded once per
    process (about 0.1 s, 9,000 names)."""
    from connectors.entities import EntityRecogniser, cached_directory

    companies = settings.companies_file
    if companies is None or not companies.is_file():
        log.warning(
            "company directory file missing: recognising the alias list only",
            extra={"event": "companies_file_missing", "path": str(companies)},
        )
    return EntityRecogniser(cached_directory(companies if companies and companies.is_file() else None))


def executor_options(settings: Settings) -> ExecutorOptions:
    from models.executor import ExecutorOptions

    return ExecutorOptions(
        device=settings.inference_device,
        precision=settings.inference_precision,
        max_length=settings.inference_max_length,
        token_budget=settings.inference_token_budget,
        cpu_threads=settings.inference_cpu_threads,
    )


class ActiveModel:
    """Loads the registry's active version, and loads again only when the active version changes;
    installs that version's taught heads on every call, so a head `finsent instructions teach`
    promotes is used from the next refresh on (heads are a few KB: re-reading them is cheap).

    With no active version the base encoder runs every instruction zero-shot, so a fresh install
    classifies (roughly) from the first message on.
    """

    def __init__(self, settings: Settings, engine: Engine) -> None:
        from models.registry import ModelRegistry

        self._engine = engine
        self._settings = settings
        self._registry = ModelRegistry(settings.models_dir, engine)
        self._options = executor_options(settings)
        self._loaded: InstructionExecutor | None = None

    def __call__(self) -> Classifier:
        from models.registry import base_executor, base_version

        version = self._registry.active_version()
        wanted = version or base_version(self._settings.encoder)
        if self._loaded is None or self._loaded.version != wanted:
            started = time.monotonic()
            try:
                if version is None:
                    loaded = base_executor(self._settings.encoder, self._options, self._settings.cache_dir)
                else:
                    loaded = self._registry.load(version, self._options)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                if self._loaded is None:
                    raise
                # A broken new version must not stop a worker that has a working model.
                log.error(
                    "model load failed; keeping the loaded model",
                    extra={"event": "model_load_failed", "model_version": wanted, "error": str(exc)},
                )
                return self._loaded
            self._loaded = loaded
            log.info(
                "model loaded",
                extra={
                    "event": "model_loaded",
                    "model_version": wanted,
                    "device": str(self._loaded.device),
                    "precision": self._loaded.precision,
                    "seconds": round(time.monotonic() - started, 2),
                },
            )
        self._install_taught(self._loaded)
        return self._loaded

    def _install_taught(self, executor: InstructionExecutor) -> None:
        from models import head_store

        before = set(executor.taught)
        try:
            head_store.install_active(self._engine, executor)
        except (SQLAlchemyError, ValueError) as exc:
            # The heads it has keep serving; the next refresh tries again.
            log.error(
                "taught heads not refreshed",
                extra={"event": "taught_heads_failed", "model_version": executor.version, "error": str(exc)},
            )
            return
        if set(executor.taught) != before:
            log.info(
                "taught heads installed",
                extra={
                    "event": "taught_heads_installed",
                    "model_version": executor.version,
                    "instructions": sorted(executor.taught),
                },
            )


class ClassifierProvider(_Refreshing[Classifier]):
    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> ClassifierProvider:
        if settings.classifier == "standin":
            return cls(StandInClassifier, refresh_s=3600.0)
        if settings.classifier == "model":
            return cls(ActiveModel(settings, engine), refresh_s=settings.model_refresh_s)
        raise ValueError(f"unknown classifier {settings.classifier!r}; expected 'model' or 'standin'")
