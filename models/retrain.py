"""The retrain job: train a candidate on base data plus new labels, and promote, instruction by
instruction, only what is measurably better than what answers now, on the same fixed holdout.

The gate judges each held-out instruction on its own: macro-F1 must improve by at least
`min_macro_f1_gain`, and no class's recall may fall by more than `max_recall_drop`. In `heads`
mode the candidate's heads are fitted on the active version's own encoder, so heads of the two are
interchangeable: the promoted version takes the candidate's head where it won and keeps the
incumbent's answer (its trained head, its taught head, or zero-shot) where it did not. In `full`
mode the encoder itself changes, so every instruction's answers move together and the candidate
is judged as a whole (mean gain over instructions, plus the recall guard). The decision row names
each instruction, where its head comes from, and why.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connectors.db.label_store import LabelRow, read_labels
from models import head_store, instruction_store
from models.datasets import Example
from models.encoder import load_encoder
from models.evaluation import classification_report
from models.executor import ExecutorOptions, InstructionExecutor
from models.instructions import ARTICLE, InstructionSet
from models.labels import is_holdout, text_hash
from models.network import InstructionModel, entity_head
from models.recipes import get_recipe
from models.registry import ModelRegistry, base_executor, compact_metrics
from models.training import TrainConfig, Trainer

log = logging.getLogger(__name__)

CANDIDATE_REASON = "retrain candidate"  # marks the rows a retrain registers and decides on
FROM_CANDIDATE = "candidate"
KEPT = "kept"


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
    status: str  # promoted | partially promoted | rejected | skipped
    reason: str
    version: str | None = None
    candidate: dict[str, Any] = field(default_factory=dict)
    active: dict[str, Any] = field(default_factory=dict)
    active_version: str | None = None
    seconds: float = 0.0
    heads: dict[str, str] = field(default_factory=dict)  # instruction -> candidate | kept


@dataclass(frozen=True)
class Decision:
    """Where each instruction's answer comes from in the version the retrain leaves active."""

    promote: bool
    reason: str
    heads: dict[str, str]  # instruction -> FROM_CANDIDATE | KEPT
    verdicts: dict[str, dict[str, Any]]

    @property
    def status(self) -> str:
        if not self.promote:
            return "rejected"
        return "promoted" if KEPT not in self.heads.values() else "partially promoted"


def holdout_reports(
    executor: InstructionExecutor, holdout: Sequence[LabelRow | Example], instructions: InstructionSet
) -> dict[str, dict[str, Any]]:
    """Each instruction's report on its rows of `holdout` (labels or examples: text, instruction,
    label), classified the way the worker classifies. The labels judged are about whole texts,
    so every instruction is read at article scope, an entity-only one included, and an example
    labelled for one entity of a text (`Example.entity`) is no evidence of the text's answer."""
    reports: dict[str, dict[str, Any]] = {}
    for instruction in instructions.instructions:
        rows = [
            r for r in holdout if r.instruction == instruction.name and getattr(r, "entity", None) is None
        ]
        if not rows:
            continue
        only = InstructionSet.of([replace(instruction, active=True, scope=ARTICLE)])
        predicted = [a[instruction.name].label for a in executor.classify([r.text for r in rows], only)]
        reports[instruction.name] = classification_report(
            [r.label for r in rows], predicted, instruction.label_names
        )
    return reports


def entity_holdout_reports(
    executor: InstructionExecutor, holdout: Sequence[Example], instructions: InstructionSet
) -> dict[str, dict[str, Any]]:
    """Each entity-scoped instruction's report on the examples labelled for one entity of a text
    (`NAME@entity`), each text read once with its entity, as the worker would."""
    reports: dict[str, dict[str, Any]] = {}
    for instruction in instructions.instructions:
        rows = [e for e in holdout if e.instruction == instruction.name and e.entity is not None]
        if not rows or not instruction.per_entity:
            continue
        only = InstructionSet.of([replace(instruction, active=True)])
        answers = executor.classify_items([e.text for e in rows], only, [[e.entity or ""] for e in rows])
        predicted = [
            a.entities[e.entity or ""].outputs[instruction.name].label
            for a, e in zip(answers, rows, strict=True)
        ]
        reports[entity_head(instruction.name)] = classification_report(
            [e.label for e in rows], predicted, instruction.label_names
        )
    return reports


def gate(
    candidate: dict[str, dict[str, Any]],
    active: dict[str, dict[str, Any]],
    config: RetrainConfig,
    guarded: Collection[str] | None = None,
) -> tuple[bool, str]:
    """(promote?, why). Class recall is guarded only for the instructions in `guarded` (None: all):
    those the incumbent answers with a trained or taught head. Zero-shot recall of a class often
    comes from predicting it everywhere, which no candidate should have to keep."""
    names = sorted(set(candidate) & set(active))
    if not names:
        return False, "no holdout labels to compare the models on"
    gain = sum(candidate[n]["macro_f1"] - active[n]["macro_f1"] for n in names) / len(names)
    for name in [n for n in names if guarded is None or n in guarded]:
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
    guarded: Collection[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each held-out instruction's own verdict (better / not better, and why)."""
    verdicts: dict[str, dict[str, Any]] = {}
    for name in sorted(set(candidate) & set(active)):
        verdict, why = gate({name: candidate[name]}, {name: active[name]}, config, guarded)
        verdicts[name] = {
            "better": verdict,
            "macro_f1_gain": round(candidate[name]["macro_f1"] - active[name]["macro_f1"], 4),
            "n": candidate[name]["n"],
            "why": why,
        }
    return verdicts


def decide(
    candidate: dict[str, dict[str, Any]],
    active: dict[str, dict[str, Any]],
    candidate_heads: set[str],
    incumbent_heads: set[str],
    config: RetrainConfig,
    mixable: bool,
) -> Decision:
    """The per-instruction decision. `mixable`: the two share one encoder, so any instruction can
    take either's head. An instruction without holdout labels cannot be judged: it keeps the
    incumbent's trained head if there is one (a retrain on sentiment labels must not take topic's
    head away), else takes the candidate's, which replaces zero-shot only if something else won.
    Class recall is guarded only where the incumbent answers with a head, not zero-shot."""
    verdicts = per_instruction(candidate, active, config, incumbent_heads)
    if not verdicts:
        return Decision(False, "no holdout labels to compare the models on", {}, {})
    if not mixable:
        promote, why = gate(candidate, active, config, incumbent_heads)
        whole = dict.fromkeys(sorted(candidate_heads), FROM_CANDIDATE if promote else KEPT)
        why += "; judged as a whole: the candidate's encoder differs from the active one's"
        return Decision(promote, why + _verdict_text(verdicts), whole, verdicts)
    heads: dict[str, str] = {}
    for name in sorted(candidate_heads | incumbent_heads):
        if name in verdicts:
            heads[name] = FROM_CANDIDATE if verdicts[name]["better"] else KEPT
        elif name in incumbent_heads or name not in candidate_heads:
            heads[name] = KEPT
        else:
            heads[name] = FROM_CANDIDATE
    promote = any(verdicts[n]["better"] for n in verdicts)
    if not promote:
        heads = dict.fromkeys(heads, KEPT)
        why = "no instruction's head is better than what answers it now"
    else:
        taken = [n for n, source in heads.items() if source == FROM_CANDIDATE]
        kept = [n for n, source in heads.items() if source == KEPT]
        why = f"candidate heads for {', '.join(taken)}"
        if kept:
            why += f"; kept what answers {', '.join(kept)}"
    return Decision(promote, why + _verdict_text(verdicts), heads, verdicts)


def _verdict_text(verdicts: dict[str, dict[str, Any]]) -> str:
    return "; per instruction: " + ", ".join(
        f"{name} {'better' if v['better'] else 'not better'} ({v['macro_f1_gain']:+.3f}, n={v['n']}"
        + ("" if v["better"] else f": {v['why']}")
        + ")"
        for name, v in verdicts.items()
    )


def merge_heads(candidate: InstructionModel, incumbent: InstructionModel, kept: Sequence[str]) -> None:
    """In place: each kept instruction answers in `candidate` as it did in `incumbent` (with its
    head, or zero-shot where the incumbent had none). Only valid when both share one encoder."""
    for name in kept:
        candidate.temperatures.pop(name, None)
        if name in incumbent.head_labels:
            candidate.heads[name] = copy.deepcopy(incumbent.heads[name])
            candidate.head_labels[name] = list(incumbent.head_labels[name])
            if name in incumbent.temperatures:
                candidate.temperatures[name] = incumbent.temperatures[name]
        elif name in candidate.heads:
            del candidate.heads[name]
            del candidate.head_labels[name]


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
    active_version = registry.active_version()
    incumbent = (
        registry.load(active_version, config.executor)
        if active_version
        else base_executor(config.encoder, config.executor, config.cache_dir)
    )
    head_store.install_active(engine, incumbent)  # taught heads answer now, so they are judged too
    # Heads fitted on the incumbent's encoder can stand beside its other heads; a full fine-tune
    # changes the encoder under every head, so its heads cannot be mixed with the incumbent's.
    mixable = config.train.mode == "heads"
    encoder_source = (
        str(registry.path_of(active_version) / "encoder") if mixable and active_version else config.encoder
    )
    log.info(
        "retrain started",
        extra={
            "event": "retrain_started",
            "rows": len(examples),
            "holdout": len(holdout),
            "mode": config.train.mode,
            "encoder": encoder_source,
        },
    )
    tokenizer, encoder = load_encoder(encoder_source, config.cache_dir)
    result = Trainer(encoder, tokenizer, trained, config.train).fit(examples)
    candidate = InstructionExecutor(result.model, tokenizer, "candidate", config.executor)
    candidate_reports = holdout_reports(candidate, holdout, trained)
    active_reports = holdout_reports(incumbent, holdout, trained)
    decision = decide(
        candidate_reports,
        active_reports,
        set(result.model.head_labels),
        set(incumbent.model.head_labels) | set(incumbent.taught),
        config,
        mixable,
    )
    kept = [name for name, source in decision.heads.items() if source == KEPT]
    if decision.promote and mixable:
        merge_heads(result.model, incumbent.model, kept)
    version = registry.register(
        result, tokenizer, InstructionSet.of(trained.instructions), config.encoder, reason=CANDIDATE_REASON
    )
    if decision.promote and mixable:
        carried = _carry_taught_heads(engine, incumbent, version, kept)
        if carried:
            log.info("taught heads carried over", extra={"event": "taught_heads_carried", "heads": carried})
    reason = f"{decision.status}: {decision.reason}"
    metrics: dict[str, Any] = {
        "per_instruction": decision.verdicts,
        "heads": decision.heads,
        "validation": compact_metrics(result.metrics),
        "holdout": {
            "candidate": compact_metrics(candidate_reports),
            "active": compact_metrics(active_reports),
        },
        "compared_with": incumbent.version,
        "encoder_from": incumbent.version if mixable else config.encoder,
        "training_rows": len(examples),
    }
    registry.record_decision(version, "active" if decision.promote else "rejected", reason, metrics)
    outcome = RetrainOutcome(
        decision.status,
        reason,
        version,
        metrics["holdout"]["candidate"],
        metrics["holdout"]["active"],
        incumbent.version,
        time.monotonic() - started,
        decision.heads,
    )
    log.info(
        "retrain decided",
        extra={"event": "retrain_decided", "status": outcome.status, "version": version, "reason": reason},
    )
    return outcome


def _carry_taught_heads(
    engine: Engine, incumbent: InstructionExecutor, version: str, kept: Sequence[str]
) -> list[str]:
    """A kept instruction that the incumbent answered with a taught head keeps that head on the new
    version: the encoder is the same, so the head means the same there."""
    carried = []
    for name in kept:
        record = head_store.active_record(engine, name, incumbent.version)
        if record is None:
            continue
        head_store.record(
            engine,
            name,
            version,
            incumbent.taught[name],
            "active",
            f"carried over from {incumbent.version} (same encoder): {record.decision_reason}",
            record.metrics,
            record.label_count,
        )
        carried.append(name)
    return carried
