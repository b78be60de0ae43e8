"""Which unlabelled items to label next, so that few labels teach an instruction most.

Pure uncertainty sampling fails a new instruction in two ways, both measured on the stand-ins in
bench/fewshot.py: a rare label (a dividend among general news, 2% of posts) is never the
uncertain one, so 32 queued labels were all `no` and the head learnt nothing; and the zero-shot
head is unsure about whole clusters of near-identical posts, so the most uncertain items are the
same story told ten times. The queue therefore fills each pick in one of two ways:
- *coverage*: while some label has fewer labels than its share, the item most likely to carry that
  label (the descriptions know enough to find candidates, even when they classify poorly);
- *uncertainty*: otherwise, the item with the highest normalised entropy;
and both discount similarity to what is already labelled or chosen (maximal marginal relevance).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

COVERAGE_SHARE = 0.5  # a label below half of an even share is sought before uncertainty
DIVERSITY_PENALTY = 0.5  # weight of the cosine similarity to the nearest labelled or chosen item


@dataclass(frozen=True)
class Pick:
    index: int  # into the candidates
    reason: str  # "uncertain" or "seeking <label>"


def select(
    probs: torch.Tensor,
    labels: Sequence[str],
    candidates: torch.Tensor,
    n: int,
    labelled: torch.Tensor | None = None,
    labelled_labels: Sequence[str] = (),
) -> list[Pick]:
    """The `n` candidates to label next, best first.

    `probs` is what answers the instruction now (candidates x labels, in `labels` order);
    `candidates` and `labelled` are pooled embeddings, `labelled_labels` the labels stored so far.
    """
    if n <= 0 or candidates.shape[0] == 0:
        return []
    k = probs.shape[1]
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum(dim=1) / math.log(max(k, 2))
    stored = Counter(labelled_labels)
    counts = torch.tensor([float(stored.get(label, 0)) for label in labels])
    sought = torch.zeros(k)  # picks of this call made to find a label

    unit = nn.functional.normalize(candidates.float(), dim=-1)
    nearest = torch.full((unit.shape[0],), -1.0)
    like: dict[int, torch.Tensor] = {}  # label -> each candidate's cosine to its nearest example
    if labelled is not None and labelled.shape[0]:
        similarity = unit @ nn.functional.normalize(labelled.float(), dim=-1).T
        nearest = similarity.max(dim=1).values
        for j, label in enumerate(labels):
            columns = [i for i, y in enumerate(labelled_labels) if y == label]
            if columns:
                like[j] = similarity[:, columns].max(dim=1).values
    chosen: list[Pick] = []
    taken = torch.zeros(unit.shape[0], dtype=torch.bool)
    for _ in range(min(n, unit.shape[0])):
        have = counts + sought
        short = int(have.argmin())
        # Seek a label while it has under COVERAGE_SHARE of an even share of the labels so far.
        seeking = bool(have[short] < COVERAGE_SHARE * max(have.sum().item(), 1.0) / k)
        # Once a label has an example, items like it find more of it than the head does: a head
        # fitted on a handful of one label's examples still ranks by the description's direction.
        base = (like[short] if short in like else probs[:, short]) if seeking else entropy
        score = base - DIVERSITY_PENALTY * nearest.clamp(min=0.0)
        score[taken] = -math.inf
        best = int(score.argmax())
        chosen.append(Pick(best, f"seeking {labels[short]}" if seeking else "uncertain"))
        taken[best] = True
        if seeking:
            # Counted as half a label: a sought item carries the label about a third of the time
            # on the rare-label stand-ins, and counting it fully stopped the search too early.
            sought[short] += 0.5
        nearest = torch.maximum(nearest, unit @ unit[best])
    return chosen
