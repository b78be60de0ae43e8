"""The scheduled jobs as plain functions of the settings, so the CLI and the scheduler share them."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine

from models.retrain import RetrainConfig, RetrainOutcome, retrain
from models.train_config import TrainConfig
from pipeline.service.runtime import executor_options
from pipeline.settings import Settings


def retrain_config(settings: Settings) -> RetrainConfig:
    train = TrainConfig(mode=settings.retrain_mode, progress=False)
    if settings.retrain_mode == "full":
        train = replace(train, epochs=settings.retrain_epochs, max_length=64, freeze_layers=2)
    return RetrainConfig(
        models_dir=settings.models_dir,
        data_dir=settings.data_dir,
        cache_dir=settings.cache_dir,
        encoder=settings.encoder,
        base_recipe=settings.retrain_base_recipe,
        train=train,
        holdout_share=settings.holdout_share,
        min_macro_f1_gain=settings.gate_min_macro_f1_gain,
        max_recall_drop=settings.gate_max_recall_drop,
        executor=executor_options(settings),
    )


def run_retrain(settings: Settings, engine: Engine) -> RetrainOutcome:
    return retrain(engine, retrain_config(settings))
