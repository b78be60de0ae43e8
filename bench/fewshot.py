"""Few-shot instructions: learning curves on stand-in questions no shipped model was trained for.

Stand-ins are cut from ../shared/data so that each is a *new* question with its own wording:
- dividend (yes/no, from the topic posts: Dividend against everything else),
- deal (yes/no, from the topic posts: M&A | Investments against everything else),
- policy (3-way, from the topic posts: central banks / macro data / bonds),
- headline (3-way, SEntFiN headlines about one entity: positive / neutral / negative).
Each is split once (seeded) into a pool, from which labels are drawn and whose texts serve as
unlabelled news, and a held-out evaluation set (balanced where the data allows) that no method
sees. Everything runs on the *base* encoder's embeddings (all-MiniLM-L6-v2, not fine-tuned on any
of these sets), as a new instruction meets a model that never saw its labels.

Methods (macro-F1 on the held-out set, mean and spread over 5 draws of the labels):
- zero-shot, single prompt (the executor before this change), prompt ensemble, ensemble calibrated
  on unlabelled pool texts;
- nearest class centroid (prototypes) and plain logistic regression, both ignoring descriptions;
- the taught head: logistic regression anchored at the calibrated zero-shot head (models.fewshot),
  with the shipped fixed strength, and with the strength chosen per draw by cross-validation.
Then the labelling queue: 32 labels chosen in 4 rounds of 8 by models.active_learning against 32
drawn at random (5 draws), both taught the same way.

Run with `make bench-fewshot`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from models import active_learning, fewshot  # noqa: E402
from models.datasets import Example  # noqa: E402
from models.evaluation import classification_report  # noqa: E402
from models.executor import InstructionExecutor  # noqa: E402
from models.instructions import Instruction, builtin  # noqa: E402
from models.recipes import sentfin_single_entity, tfn_topic  # noqa: E402
from models.registry import base_executor  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402

SHOTS = (0, 8, 16, 32, 64)
DRAWS = 5
MIN_POOL_PER_LABEL = 100
CV_STRENGTHS = (3.0, 1.0, 0.3, 0.1)
QUEUE_POOL = 2000  # as `finsent labels queue --pool`


@dataclass
class StandIn:
    instruction: Instruction
    pool_texts: list[str]
    pool_labels: list[str]
    eval_texts: list[str]
    eval_labels: list[str]
    pool: torch.Tensor | None = None
    held: torch.Tensor | None = None


def _split(
    examples: list[tuple[str, str]], per_label_eval: dict[str, int], pool_cap: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Held-out rows per label first, then a pool in the data's own proportions, capped.

    Each label keeps at least MIN_POOL_PER_LABEL rows in the pool, so a rare label (a dividend is
    2% of the posts) can still be drawn 64 times; filling the pool in shuffled order instead left
    the rare label's rows all in the held-out set.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for row in examples:
        by_label.setdefault(row[1], []).append(row)
    held: list[tuple[str, str]] = []
    rest: dict[str, list[tuple[str, str]]] = {}
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        held += rows[: per_label_eval[label]]
        rest[label] = rows[per_label_eval[label] :]
    total = sum(len(rows) for rows in rest.values())
    pool: list[tuple[str, str]] = []
    for rows in rest.values():
        share = max(MIN_POOL_PER_LABEL, round(pool_cap * len(rows) / max(total, 1)))
        pool += rows[:share]
    rng.shuffle(pool)
    return pool, held


def stand_ins(data_dir: Path) -> list[StandIn]:
    topics = tfn_topic(data_dir, builtin())
    headlines = sentfin_single_entity(data_dir, builtin())

    def binary(name: str, text: str, topic: str, yes: str, no: str) -> StandIn:
        rows = [(e.text, "yes" if e.label == topic else "no") for e in topics]
        pool, held = _split(rows, {"yes": 150, "no": 450}, 4000, seed=len(name))
        return _make(Instruction(name, text, {"yes": yes, "no": no}), pool, held)

    def subset(name: str, text: str, mapping: dict[str, str], labels: dict[str, str]) -> StandIn:
        rows = [(e.text, mapping[e.label]) for e in topics if e.label in mapping]
        pool, held = _split(rows, dict.fromkeys(labels, 150), 4000, seed=len(name))
        return _make(Instruction(name, text, labels), pool, held)

    def from_examples(name: str, text: str, examples: list[Example], labels: dict[str, str]) -> StandIn:
        rows = [(e.text, e.label) for e in examples]
        pool, held = _split(rows, dict.fromkeys(labels, 150), 4000, seed=len(name))
        return _make(Instruction(name, text, labels), pool, held)

    return [
        binary(
            "dividend",
            "Does this post report a dividend?",
            "Dividend",
            "a company declares, raises, cuts or pays a dividend",
            "anything else; no dividend is announced",
        ),
        binary(
            "deal",
            "Does this post report a merger, an acquisition or an investment in a company?",
            "M&A | Investments",
            "a takeover, merger, acquisition, stake purchase or investment deal",
            "anything else; no deal is reported",
        ),
        subset(
            "policy",
            "Which part of the economy does this post discuss?",
            {"Fed | Central Banks": "central_bank", "Macro": "macro", "Treasuries | Corporate Debt": "bonds"},
            {
                "central_bank": "central bank decisions, interest rates, Fed officials and monetary policy",
                "macro": "economic data: inflation, jobs, growth, consumer spending",
                "bonds": "government and corporate bonds, yields, debt issuance",
            },
        ),
        from_examples(
            "headline",
            "Is this headline good or bad news for the company it names?",
            headlines,
            {
                "positive": "good news for the company: growth, profit, gains, upgrades",
                "neutral": "neither good nor bad for the company",
                "negative": "bad news for the company: losses, falls, cuts, downgrades",
            },
        ),
    ]


def _make(instruction: Instruction, pool: list[tuple[str, str]], held: list[tuple[str, str]]) -> StandIn:
    return StandIn(
        instruction,
        [t for t, _ in pool],
        [label for _, label in pool],
        [t for t, _ in held],
        [lb for _, lb in held],
    )


def _counts(labels: list[str]) -> dict[str, int]:
    return dict(Counter(labels))


def macro_f1(truth: list[str], predicted: list[str], labels: list[str]) -> float:
    return float(classification_report(truth, predicted, labels)["macro_f1"])


def draw(labels: list[str], per_label: int, rng: random.Random) -> list[int]:
    chosen: list[int] = []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        chosen += rng.sample(members, min(per_label, len(members)))
    return chosen


def taught(s: StandIn, prior: fewshot.LinearHead, chosen: list[int]) -> fewshot.LinearHead:
    """A head from whatever labels were chosen (a label may have none yet: its anchor row stays)."""
    assert s.pool is not None
    return fewshot.fit_head(s.pool[chosen], [s.pool_labels[i] for i in chosen], prior)


def _cv_strength(features: torch.Tensor, targets: list[str], prior: fewshot.LinearHead) -> float:
    """The strength with the best 4-fold out-of-fold macro-F1 on the labels themselves."""
    best, best_f1 = fewshot.PRIOR_STRENGTH, -1.0
    for strength in CV_STRENGTHS:
        predicted = fewshot.out_of_fold(features, targets, prior, 4, strength)
        f1 = macro_f1(targets, predicted, list(prior.labels))
        if f1 > best_f1 + 1e-9:
            best, best_f1 = strength, f1
    return best


def prototypes(s: StandIn, chosen: list[int]) -> Callable[[torch.Tensor], list[str]]:
    assert s.pool is not None
    labels = s.instruction.label_names
    unit = nn.functional.normalize(s.pool, dim=-1)
    centroids = torch.stack(
        [unit[[i for i in chosen if s.pool_labels[i] == label]].mean(dim=0) for label in labels]
    )
    return lambda x: [
        labels[i] for i in (nn.functional.normalize(x, dim=-1) @ centroids.T).argmax(1).tolist()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--cache", type=Path, help="save the embeddings here, or load them if present")
    args = parser.parse_args()
    settings = load_settings()
    torch.manual_seed(0)
    started = time.monotonic()
    executor: InstructionExecutor = base_executor(settings.encoder, cache_dir=settings.cache_dir)
    cases = stand_ins(settings.data_dir)
    cached = torch.load(args.cache) if args.cache and args.cache.exists() else {}
    for s in cases:
        name = s.instruction.name
        if name in cached:
            s.pool, s.held = cached[name]
        else:
            s.pool, s.held = executor.embed(s.pool_texts), executor.embed(s.eval_texts)
            cached[name] = (s.pool, s.held)
    if args.cache:
        torch.save(cached, args.cache)
    embed_s = time.monotonic() - started
    print(f"# {os.cpu_count()} cores; encoder {settings.encoder}; embeddings in {embed_s:.0f} s")
    for s in cases:
        counts = _counts(s.eval_labels)
        print(f"# {s.instruction.name}: pool {len(s.pool_texts)}, held out {len(s.eval_texts)} {counts}")

    print("\n## Zero-shot (macro-F1 on held-out)")
    print("| stand-in | single prompt (before) | prompt ensemble | ensemble, calibrated |")
    print("| --- | --- | --- | --- |")
    priors: dict[str, fewshot.LinearHead] = {}
    for s in cases:
        assert s.pool is not None and s.held is not None
        labels = s.instruction.label_names
        phrasings = executor.label_prompt_embeddings(s.instruction)
        # The executor before this change: one prompt per label, "{text} {label}: {description}".
        single = fewshot.prior_head(phrasings[:, :1], labels).predict(s.held)
        prior = fewshot.prior_head(phrasings, labels)
        reference = s.pool[torch.randperm(s.pool.shape[0])[:1000]]
        calibrated = fewshot.calibrated(prior, reference)
        priors[s.instruction.name] = calibrated
        print(
            f"| {s.instruction.name} | {macro_f1(s.eval_labels, single, labels):.3f} "
            f"| {macro_f1(s.eval_labels, prior.predict(s.held), labels):.3f} "
            f"| {macro_f1(s.eval_labels, calibrated.predict(s.held), labels):.3f} |"
        )

    print("\n## Learning curves: macro-F1 on held-out, mean ± sd over draws; labels per label")
    methods = ("prototypes", "logistic regression", "anchored, strength by CV", "taught head (chosen)")
    fit_seconds: list[float] = []
    for s in cases:
        assert s.pool is not None and s.held is not None
        labels = s.instruction.label_names
        prior = priors[s.instruction.name]
        zero = macro_f1(s.eval_labels, prior.predict(s.held), labels)
        print(f"\n### {s.instruction.name}\n| method | " + " | ".join(str(k) for k in SHOTS) + " |")
        print("| --- |" + " --- |" * len(SHOTS))
        rows: dict[str, list[str]] = {
            m: [f"{zero:.3f}" if m.startswith(("taught", "anchored")) else "-"] for m in methods
        }
        blank = fewshot.LinearHead(prior.labels, torch.zeros_like(prior.weight), torch.zeros_like(prior.bias))
        for k in SHOTS[1:]:
            scores: dict[str, list[float]] = {m: [] for m in methods}
            for d in range(args.draws):
                chosen = draw(s.pool_labels, k, random.Random(1000 * k + d))
                scores["prototypes"].append(macro_f1(s.eval_labels, prototypes(s, chosen)(s.held), labels))
                plain = fewshot.fit_head(s.pool[chosen], [s.pool_labels[i] for i in chosen], blank, 1.0)
                scores["logistic regression"].append(macro_f1(s.eval_labels, plain.predict(s.held), labels))
                targets = [s.pool_labels[i] for i in chosen]
                strength = _cv_strength(s.pool[chosen], targets, prior)
                by_cv = fewshot.fit_head(s.pool[chosen], targets, prior, strength)
                scores["anchored, strength by CV"].append(
                    macro_f1(s.eval_labels, by_cv.predict(s.held), labels)
                )
                t0 = time.monotonic()
                head = taught(s, prior, chosen)
                fit_seconds.append(time.monotonic() - t0)
                scores["taught head (chosen)"].append(macro_f1(s.eval_labels, head.predict(s.held), labels))
            for m in methods:
                values = scores[m]
                rows[m].append(f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}")
        for m in methods:
            print(f"| {m} | " + " | ".join(rows[m]) + " |")
    print(
        f"\ntaught head: fit (L-BFGS, 60 iterations), median "
        f"{statistics.median(fit_seconds) * 1000:.0f} ms, max {max(fit_seconds) * 1000:.0f} ms "
        "(embeddings cached)"
    )

    print(
        f"\n## Labelling queue: 32 labels, queue (4 rounds of 8) against 32 random, from the same "
        f"{QUEUE_POOL} unlabelled items (one random subset of the pool per draw), taught the same way"
    )
    print("| stand-in | random 32 (mean ± sd) | queue 32 (mean ± sd) | queue wins | labels the queue chose |")
    print("| --- | --- | --- | --- | --- |")
    for s in cases:
        assert s.pool is not None and s.held is not None
        labels = s.instruction.label_names
        prior = priors[s.instruction.name]
        random_scores, queue_scores, chosen_counts = [], [], _counts([])
        for d in range(args.draws):
            rng = random.Random(d)
            subset = rng.sample(range(len(s.pool_labels)), min(QUEUE_POOL, len(s.pool_labels)))
            chosen = rng.sample(subset, 32)
            random_scores.append(macro_f1(s.eval_labels, taught(s, prior, chosen).predict(s.held), labels))
            picked = _queue(s, prior, subset, 32)
            queue_scores.append(macro_f1(s.eval_labels, taught(s, prior, picked).predict(s.held), labels))
            for label, n in _counts([s.pool_labels[i] for i in picked]).items():
                chosen_counts[label] = chosen_counts.get(label, 0) + n
        wins = sum(q > r for q, r in zip(queue_scores, random_scores, strict=True))
        print(
            f"| {s.instruction.name} "
            f"| {statistics.mean(random_scores):.3f} ± {statistics.pstdev(random_scores):.3f} "
            f"| {statistics.mean(queue_scores):.3f} ± {statistics.pstdev(queue_scores):.3f} "
            f"| {wins} of {args.draws} | {chosen_counts} (all draws) |"
        )
    print(f"\n# total {time.monotonic() - started:.0f} s")
    return 0


def _queue(s: StandIn, prior: fewshot.LinearHead, subset: list[int], total: int) -> list[int]:
    """`total` labels chosen from `subset` in rounds of 8, re-teaching after each round as an
    analyst would (label the queue, teach, ask for the next queue)."""
    assert s.pool is not None
    picked: list[int] = []
    head = prior
    while len(picked) < total:
        taken = set(picked)
        rest = [i for i in subset if i not in taken]
        batch = active_learning.select(
            head.probabilities(s.pool[rest]),
            head.labels,
            s.pool[rest],
            8,
            s.pool[picked] if picked else None,
            [s.pool_labels[i] for i in picked],
        )
        picked += [rest[p.index] for p in batch]
        head = taught(s, prior, picked)
    return picked


if __name__ == "__main__":
    raise SystemExit(main())
