"""The retrain job: train a candidate on base data plus new labels, and promote it only if it is
measurably better than the active model on the same fixed holdout.

The gate: mean macro-F1 over the held-out instructions must improve by at least
`min_macro_f1_gain`, and no class's recall may fall by more than `max_recall_drop`. The decision,
both models' holdout metrics and the reason are recorded on the candidate's `model_versions` row
whether it is promoted or rejected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connectors.db.label_store import LabelRow, read_labels
from models import instruction_store
from models.datasets import Example
from models.encoder import load_encoder
from models.evaluation import classification_report
from models.executor import ExecutorOptions, InstructionExecutor
from models.instructions import InstructionSet
from models.labels import is_holdout, text_hash
from models.recipes import get_recipe
from models.registry import ModelRegistry, base_executor, compact_metrics
from models.training import TrainConfig, Trainer

log = logging.getLogger(__name__)

CANDIDATE_REASON = "retrain candidate"  # marks the rows a retrain registers and decides on


@dataclass(frozen=True)
class RetrainConfig:
    models_dir: Path
    data_dir: Path
    cache_dir: Path
    encoder: str = "minilm"
    base_recipe: str = "default"  # "" trains on labels only
    train: TrainConfig = field(default_factory=lambda: TrainConfig(mode="heads"))
    holdout_share: float = 0.2
    min_macro_f1_gain: float = 0.005
    max_recall_drop: float = 0.05
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)


@dataclass
class RetrainOutcome:
    status: str  # promoted | rejected | skipped
    reason: str
    version: str | None = None
    candidate: dict[str, Any] = field(default_factory=dict)
    active: dict[str, Any] = field(default_factory=dict)
    active_version: str | None = None
    seconds: float = 0.0


def holdout_reports(
    executor: InstructionExecutor, holdout: Sequence[LabelRow | Example], instructions: InstructionSet
) -> dict[str, dict[str, Any]]:
    """Each instruction's report on its rows of `holdout` (labels or examples: text, instruction,
    label), classified the way the worker classifies."""
    reports: dict[str, dict[str, Any]] = {}
    for instruction in instructions.instructions:
        rows = [r for r in holdout if r.instruction == instruction.name]
        if not rows:
            continue
        only = InstructionSet.of([replace(instruction, active=True)])
        predicted = [a[instruction.name].label for a in executor.classify([r.text for r in rows], only)]
        reports[instruction.name] = classification_report(
            [r.label for r in rows], predicted, instruction.label_names
        )
    return reports


def gate(
    candidate: dict[str, dict[str, Any]],
    active: dict[str, dict[str, Any]],
    config: RetrainConfig,
    guard_recall: bool = True,
) -> tuple[bool, str]:
    """(promote?, why). `guard_recall` is off against the untrained base encoder: zero-shot recall
    of a class often comes from predicting it everywhere, which no candidate should have to keep."""
    names = sorted(set(candidate) & set(active))
    if not names:
        return False, "no holdout labels to compare the models on"
    gain = sum(candidate[n]["macro_f1"] - active[n]["macro_f1"] for n in names) / len(names)
    for name in names if guard_recall else []:
        for label, figures in active[name]["per_class"].items():
            if not figures["support"]:
                continue
            drop = figures["recall"] - candidate[name]["per_class"][label]["recall"]
            if drop > config.max_recall_drop:
                return False, (
                    f"recall of {name}={label} falls by {drop:.3f} (> {config.max_recall_drop}); "
                    f"mean macro-F1 gain {gain:+.4f}"
                )
    if gain < config.min_macro_f1_gain:
        return False, f"mean macro-F1 gain {gain:+.4f} is below the required {config.min_macro_f1_gain}"
    return (
        True,
        f"mean macro-F1 gain {gain:+.4f} on {', '.join(names)}; no class recall fell by more than allowed",
    )


def per_instruction(
    candidate: dict[str, dict[str, Any]],
    active: dict[str, dict[str, Any]],
    config: RetrainConfig,
    guard_recall: bool = True,
) -> dict[str, dict[str, Any]]:
    """Each held-out instruction's own verdict (better / not better, and why), recorded on the
    decision row so that a rejection says which instruction held the candidate back."""
    verdicts: dict[str, dict[str, Any]] = {}
    for name in sorted(set(candidate) & set(active)):
        verdict, why = gate({name: candidate[name]}, {name: active[name]}, config, guard_recall)
        verdicts[name] = {
            "better": verdict,
            "macro_f1_gain": round(candidate[name]["macro_f1"] - active[name]["macro_f1"], 4),
            "n": candidate[name]["n"],
            "why": why,
        }
    return verdicts


def retrain(engine: Engine, config: RetrainConfig) -> RetrainOutcome:
    started = time.monotonic()
    registry = ModelRegistry(config.models_dir, engine)
    interrupted = registry.clear_interrupted(CANDIDATE_REASON)
    if interrupted:
        log.warning(
            "candidates of an interrupted retrain rejected",
            extra={"event": "retrain_interrupted_cleared", "versions": interrupted},
        )
    instructions = instruction_store.current(engine)
    labels = [r for r in read_labels(engine) if r.instruction in instructions.names()]
    holdout = [r for r in labels if is_holdout(r.text_hash, config.holdout_share)]
    if not holdout:
        return RetrainOutcome("skipped", "no holdout labels yet: nothing to judge a candidate on")
    held_hashes = {r.text_hash for r in holdout}
    examples = [Example(r.text, r.instruction, r.label) for r in labels if r.text_hash not in held_hashes]
    if config.base_recipe:
        base = get_recipe(config.base_recipe).examples(config.data_dir, instructions)
        examples = [e for e in base if text_hash(e.text) not in held_hashes] + examples
    if not examples:
        return RetrainOutcome("skipped", "no training rows outside the holdout")
    trained = InstructionSet.of(
        i for i in instructions.instructions if i.name in {e.instruction for e in examples}
    )
    log.info(
        "retrain started",
        extra={
            "event": "retrain_started",
            "rows": len(examples),
            "holdout": len(holdout),
            "mode": config.train.mode,
        },
    )
    tokenizer, encoder = load_encoder(config.encoder, config.cache_dir)
    result = Trainer(encoder, tokenizer, trained, config.train).fit(examples)
    version = registry.register(result, tokenizer, trained, config.encoder, reason=CANDIDATE_REASON)
    candidate = registry.load(version, config.executor)
    active_version = registry.active_version()
    active = (
        registry.load(active_version, config.executor)
        if active_version
        else base_executor(config.encoder, config.executor, config.cache_dir)
    )
    candidate_reports = holdout_reports(candidate, holdout, trained)
    active_reports = holdout_reports(active, holdout, trained)
    promoted, reason = gate(
        candidate_reports, active_reports, config, guard_recall=active_version is not None
    )
    holdout_metrics = {
        "candidate": compact_metrics(candidate_reports),
        "active": compact_metrics(active_reports),
    }
    verdicts = per_instruction(
        candidate_reports, active_reports, config, guard_recall=active_version is not None
    )
    if verdicts:
        reason += "; per instruction: " + ", ".join(
            f"{name} {'better' if v['better'] else 'not better'} ({v['macro_f1_gain']:+.3f}, n={v['n']})"
            for name, v in verdicts.items()
        )
    metrics: dict[str, Any] = {
        "per_instruction": verdicts,
        "validation": compact_metrics(result.metrics),
        "holdout": {
            "candidate": compact_metrics(candidate_reports),
            "active": compact_metrics(active_reports),
        },
        "compared_with": active.version,
        "training_rows": len(examples),
    }
    registry.record_decision(version, "active" if promoted else "rejected", reason, metrics)
    outcome = RetrainOutcome(
        "promoted" if promoted else "rejected",
        reason,
        version,
        holdout_metrics["candidate"],
        holdout_metrics["active"],
        active.version,
        time.monotonic() - started,
    )
    log.info(
        "retrain decided",
        extra={"event": "retrain_decided", "status": outcome.status, "version": version, "reason": reason},
    )
    return outcome
