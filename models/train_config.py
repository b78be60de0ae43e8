"""What a training run optimises and how it reports: kept apart from the trainer so that the
command line and the recipes can read and check a configuration without importing torch (seconds
on this CPU: an operator's typo in a recipe name was answered after ten)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    mode: str = "full"  # heads | full
    epochs: float = 3.0  # fractions allowed: 1.5 runs one epoch and half of a second
    batch_size: int = 32
    max_length: int = 64
    encoder_lr: float = 5e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    val_fraction: float = 0.1
    patience: int = 1
    seed: int = 13
    class_weight_power: float = 0.5  # 0: none, 1: inverse frequency; 0.5 lifts rare classes gently
    class_weight_power_by: dict[str, float] = field(default_factory=dict)  # per instruction, overrides
    label_smoothing: float = 0.0  # share of each gold label's mass spread over the others
    freeze_embeddings: bool = True  # word embeddings barely move in fine-tuning and cost optimiser time
    freeze_layers: int = 0  # bottom encoder layers kept frozen in `full` mode (faster backward pass)
    # Layer-wise learning-rate decay: the top layer trains at encoder_lr, each layer below at this
    # factor of the one above, the embeddings below the bottom layer (1.0: one rate for all).
    layer_lr_decay: float = 1.0
    time_budget_s: float | None = None  # `full` mode stops (and validates) when this is spent
    heads_epochs: int = 60  # passes over cached embeddings in `heads` mode
    distill_temperature: float = 2.0  # softens the teacher: its second choices teach too
    distill_alpha: float = 0.3  # share of the loss from gold labels, on rows that have one
    checkpoint_dir: str | None = None  # `full` mode saves its state here and resumes from it
    checkpoint_every_s: float = 600.0  # a kill loses at most this much training
    checkpoint_every_steps: int = 0  # also every N optimiser steps (0: by time only)
    device: str = "cpu"
    progress: bool = True


# Settings that say where or how a run reports, or when it stops, not what it optimises: a resume
# may change them (give a killed two-hour run a longer budget) without being refused.
RUN_ONLY_SETTINGS = {
    "device",
    "progress",
    "checkpoint_dir",
    "checkpoint_every_s",
    "checkpoint_every_steps",
    "time_budget_s",
}
