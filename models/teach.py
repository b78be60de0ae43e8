"""`finsent instructions teach`: fit one instruction's head from its labels, judge it against what
answers that instruction now, and promote it only when the evidence says it is better.

With tens of labels a fixed holdout decides nothing (18 held-out items gave 0.37 against 0.51 in
the run that motivated this module: noise either way), so every label serves as evidence:
- the candidate is judged out of fold (stratified k-fold: each label predicted by a head that did
  not see it);
- the incumbent is judged on the same items. An active taught head is judged only on the labels
  it was not fitted on (its row lists them), since on its own training labels it is nearly always
  right; a model's trained head may have been fitted on some of them (retrain uses the labels
  outside the holdout), which only favours it: the gate errs towards keeping;
- the difference of macro-F1 gets a paired bootstrap confidence interval, and promotion needs its
  lower bound above zero *and* a minimum number of labels per label.
Only the taught instruction's row changes; every other instruction's head is left as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from sqlalchemy import Engine

from connectors.db.label_store import LabelRow
from connectors.errors import UserInputError
from models import head_store
from models.evaluation import classification_report
from models.executor import InstructionExecutor
from models.fewshot import fit_head, out_of_fold
from models.instructions import Instruction

log = logging.getLogger(__name__)

MIN_PER_LABEL_TO_LEARN = 4  # below this a fold would hold no example of the label to judge on
MIN_PER_LABEL_TO_PROMOTE = 8  # below this even a clear out-of-fold win is too few items to trust
MIN_NEW_TO_COMPARE = 16  # labels an active taught head has not seen, to judge a replacement on
HASH_PREFIX = 16  # hex digits of a text hash kept per training label: 64 bits, no collisions here
MAX_FOLDS = 5
CONFIDENCE = 0.90  # two-sided interval; its lower bound above 0 = better with 95% one-sided
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0  # the same labels give the same interval and the same decision


class TeachError(UserInputError, ValueError):
    """Teaching cannot start; the message says what is missing. Nothing was changed."""


@dataclass
class TeachOutcome:
    instruction: str
    status: str  # promoted | rejected
    reason: str
    counts: dict[str, int]
    compared_with: str
    candidate: dict[str, Any] = field(default_factory=dict)
    incumbent: dict[str, Any] = field(default_factory=dict)
    difference: float = 0.0
    interval: tuple[float, float] = (0.0, 0.0)
    folds: int = 0
    head_id: int | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "status": self.status,
            "reason": self.reason,
            "labels": self.counts,
            "compared_with": self.compared_with,
            "candidate_macro_f1": round(float(self.candidate.get("macro_f1", 0.0)), 4),
            "incumbent_macro_f1": round(float(self.incumbent.get("macro_f1", 0.0)), 4),
            "difference": round(self.difference, 4),
            "interval": [round(v, 4) for v in self.interval],
            "folds": self.folds,
            "head_id": self.head_id,
            "seconds": round(self.seconds, 2),
        }


def latest_per_text(rows: list[LabelRow]) -> list[LabelRow]:
    """One label per text (the last stored wins): two annotators' labels of one text would count
    the same item twice in the evidence, and could put it on both sides of a fold."""
    by_text: dict[str, LabelRow] = {}
    for row in rows:
        by_text[row.text_hash] = row
    return list(by_text.values())


def check_evidence(instruction: Instruction, rows: list[LabelRow]) -> dict[str, int]:
    counts = dict.fromkeys(instruction.label_names, 0)
    for row in rows:
        counts[row.label] = counts.get(row.label, 0) + 1
    missing = {label: MIN_PER_LABEL_TO_LEARN - n for label, n in counts.items() if n < MIN_PER_LABEL_TO_LEARN}
    if missing:
        needs = ", ".join(f"{n} more {label!r}" for label, n in missing.items())
        raise TeachError(
            f"{instruction.name}: too few labels to learn and judge a head; every label needs at "
            f"least {MIN_PER_LABEL_TO_LEARN} (have {counts}): add {needs}. Nothing was changed."
        )
    return counts


def bootstrap_difference(
    truth: list[int], candidate: list[int], incumbent: list[int], k: int
) -> tuple[float, float]:
    """Paired bootstrap interval of macro-F1(candidate) - macro-F1(incumbent) over items."""
    n = len(truth)
    generator = torch.Generator().manual_seed(BOOTSTRAP_SEED)
    weights = torch.zeros(BOOTSTRAP_SAMPLES, n)
    draws = torch.randint(n, (BOOTSTRAP_SAMPLES, n), generator=generator)
    weights.scatter_add_(1, draws, torch.ones(BOOTSTRAP_SAMPLES, n))
    t = torch.nn.functional.one_hot(torch.tensor(truth), k).float()

    def macro(predicted: list[int]) -> torch.Tensor:
        p = torch.nn.functional.one_hot(torch.tensor(predicted), k).float()
        tp = weights @ (t * p)
        support = weights @ t
        denominator = support + weights @ p
        f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1e-9), 0.0)
        present = (support > 0).float()
        return (f1 * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)

    difference = macro(candidate) - macro(incumbent)
    tail = (1 - CONFIDENCE) / 2
    low, high = torch.quantile(difference, torch.tensor([tail, 1 - tail])).tolist()
    return float(low), float(high)


def incumbent_name(executor: InstructionExecutor, instruction: Instruction) -> str:
    if executor.taught_head_for(instruction) is not None:
        return "the active taught head"
    if executor.head_for(instruction) is not None:
        return f"the trained head of {executor.version}"
    return "zero-shot"


def teach(
    engine: Engine, executor: InstructionExecutor, instruction: Instruction, rows: list[LabelRow]
) -> TeachOutcome:
    """Decide on a head for `instruction` from `rows` (its labels); record it; say why."""
    started = time.monotonic()
    rows = latest_per_text([r for r in rows if r.instruction == instruction.name])
    counts = check_evidence(instruction, rows)
    labels = instruction.label_names
    targets = [r.label for r in rows]
    features = executor.embed([r.text for r in rows])
    prior = executor.zero_shot_head(instruction)
    folds = min(MAX_FOLDS, min(counts.values()))
    candidate_predicted = out_of_fold(features, targets, prior, folds)
    incumbent_probs, _ = executor.probabilities(features, instruction)
    incumbent_predicted = [labels[i] for i in incumbent_probs.argmax(dim=-1).tolist()]
    compared_with = incumbent_name(executor, instruction)
    judged = list(range(len(rows)))
    if compared_with == "the active taught head":
        record = head_store.active_record(engine, instruction.name, executor.version)
        seen = set(record.metrics.get("trained_on", [])) if record else set()
        judged = [i for i, r in enumerate(rows) if r.text_hash[:HASH_PREFIX] not in seen]

    def on_judged(values: list[str]) -> list[str]:
        return [values[i] for i in judged]

    truth = on_judged(targets)
    candidate = classification_report(truth, on_judged(candidate_predicted), labels)
    incumbent = classification_report(truth, on_judged(incumbent_predicted), labels)
    index = {label: i for i, label in enumerate(labels)}
    low, high = (
        bootstrap_difference(
            [index[t] for t in truth],
            [index[p] for p in on_judged(candidate_predicted)],
            [index[p] for p in on_judged(incumbent_predicted)],
            len(labels),
        )
        if judged
        else (0.0, 0.0)
    )
    difference = float(candidate["macro_f1"] - incumbent["macro_f1"])
    scope = (
        f"the same {len(rows)} labels"
        if len(judged) == len(rows)
        else f"the {len(judged)} of {len(rows)} labels it was not fitted on"
    )
    evidence = (
        f"out-of-fold macro-F1 {candidate['macro_f1']:.3f} against {incumbent['macro_f1']:.3f} for "
        f"{compared_with} on {scope} ({folds}-fold CV); difference "
        f"{difference:+.3f}, {CONFIDENCE:.0%} interval [{low:+.3f}, {high:+.3f}]"
    )
    fewest = min(counts.values())
    if len(judged) < min(MIN_NEW_TO_COMPARE, len(rows)):
        promoted = False
        reason = (
            f"rejected: {evidence}; too few labels the active head has not seen to judge a "
            f"replacement ({len(judged)}; needs {MIN_NEW_TO_COMPARE}): label more items first"
        )
    elif fewest < MIN_PER_LABEL_TO_PROMOTE:
        promoted = False
        reason = (
            f"rejected: {evidence}; too little evidence to promote: every label needs "
            f"{MIN_PER_LABEL_TO_PROMOTE} labels (fewest: {fewest})"
        )
    elif low > 0:
        promoted = True
        reason = f"promoted: {evidence}; better with {1 - (1 - CONFIDENCE) / 2:.0%} confidence"
    else:
        promoted = False
        reason = f"rejected: {evidence}; the interval does not exclude zero, so it is not shown to be better"
    head = fit_head(features, targets, prior)
    metrics = {
        "candidate": _compact(candidate),
        "incumbent": _compact(incumbent),
        "compared_with": compared_with,
        "difference": round(difference, 4),
        "interval": [round(low, 4), round(high, 4)],
        "confidence": CONFIDENCE,
        "folds": folds,
        "labels": counts,
        "judged_on": len(judged),
        "trained_on": sorted({r.text_hash[:HASH_PREFIX] for r in rows}),
    }
    head_id = head_store.record(
        engine,
        instruction.name,
        executor.version,
        head,
        "active" if promoted else "rejected",
        reason,
        metrics,
        len(rows),
    )
    if promoted:
        executor.install_taught({**executor.taught, instruction.name: head})
    outcome = TeachOutcome(
        instruction.name,
        "promoted" if promoted else "rejected",
        reason,
        counts,
        compared_with,
        candidate,
        incumbent,
        difference,
        (low, high),
        folds,
        head_id,
        time.monotonic() - started,
    )
    log.info(
        "instruction taught",
        extra={"event": "instruction_taught", **outcome.summary()},
    )
    return outcome


def _compact(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n": report["n"],
        "recall": {label: round(f["recall"], 4) for label, f in report["per_class"].items()},
    }
