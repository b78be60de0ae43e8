"""Knowledge distillation: a slow, accurate teacher labels every text we have, and the fast serving
encoder learns the teacher's whole distribution, not only its top label.

Why it pays: the labelled posts are few; news text without labels (the posts of the other task,
SEntFiN's headlines, the scraper's articles, replay files) is plentiful. The teacher's soft labels
carry how sure it is and which label is second ("mildly positive, else neutral"), which a hard
label throws away (Hinton et al. 2015). Where a row also has a gold label the student learns from
both: `alpha` of the loss is the gold cross-entropy, the rest the KL divergence to the teacher at
`temperature`, scaled by T² so its gradients keep their size as T changes.

The student's heads are the teacher's heads, label for label: a student with its own label set
could not be compared with (or replace) its teacher.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from models.datasets import Example
from models.network import InstructionModel, is_entity_head
from models.rows import Row, row_features
from models.text import prepare_text


@dataclass(frozen=True)
class SoftExample:
    """One text (or one entity of a text) with the teacher's logits for each head that reads it,
    and the gold labels of the heads it has one for."""

    text: str
    entity: str | None
    teacher: Mapping[str, tuple[float, ...]]  # head key -> teacher logits (raw, temperature 1)
    gold: Mapping[str, str] = field(default_factory=dict)  # head key -> label


@dataclass
class Teacher:
    """A trained model that labels rows: its heads, its tokenizer and the context it was trained at."""

    model: InstructionModel
    tokenizer: PreTrainedTokenizerBase
    max_length: int = 128
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 64
    progress: bool = False

    @property
    def head_labels(self) -> dict[str, list[str]]:
        return {name: list(labels) for name, labels in self.model.head_labels.items()}

    def logits(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        """Every head's raw logits for every row (n x labels, on the CPU). Entity heads are only
        meaningful on entity rows and article heads on article rows; `soft_examples` keeps each."""
        self.model.to(self.device)
        features = row_features(
            self.model,
            self.tokenizer,
            rows,
            self.max_length,
            self.device,
            batch_size=self.batch_size,
            progress=self.progress,
            desc="teacher",
        )
        with torch.inference_mode():
            return {name: value.float().cpu() for name, value in self.model.logits(features).items()}


@dataclass(frozen=True)
class _Pending:
    text: str
    entity: str | None


def soft_examples(
    teacher: Teacher,
    labelled: Sequence[Example],
    unlabelled: Iterable[str] = (),
    entity_texts: Iterable[tuple[str, str]] = (),
    exclude: Iterable[str] = (),
) -> list[SoftExample]:
    """The distillation rows: each distinct labelled (text, entity) with its gold labels, each
    unlabelled text, and each (text, entity) pair without a label, all with the teacher's logits.

    `exclude` holds texts that must teach nothing (the validation rows: a student fitted to the
    teacher's answers on them would be scored on text it was trained on). Texts are compared
    after `prepare_text`, case-folded, as the trainer's split does.
    """
    heads = teacher.head_labels
    article_heads = [h for h in heads if not is_entity_head(h)]
    entity_heads = [h for h in heads if is_entity_head(h)]
    excluded = {prepare_text(t).casefold() for t in exclude}
    # Keyed as the trainer's split dedups: prepared and case-folded, so a headline repeated in
    # another case is one row, not a double weight.
    gold: dict[tuple[str, str | None], dict[str, str]] = defaultdict(dict)
    order: list[tuple[str, str | None]] = []
    first_text: dict[tuple[str, str | None], str] = {}

    def add(text: str, entity: str | None) -> tuple[str, str | None] | None:
        prepared = prepare_text(text)
        if not prepared.strip() or prepared.casefold() in excluded:
            return None
        key = (prepared.casefold(), entity)
        if key not in gold:
            gold[key] = {}
            order.append(key)
            first_text[key] = prepared
        return key

    for example in labelled:
        if example.head not in heads:
            continue  # a label set the teacher does not have cannot be distilled
        key = add(example.text, example.entity)
        if key is not None:
            gold[key].setdefault(example.head, example.label)
    for text in unlabelled:
        add(text, None)
    if entity_heads:
        for text, name in entity_texts:
            add(text, name)
    pending = [_Pending(first_text[key], key[1]) for key in order]
    if not pending:
        return []
    logits = teacher.logits(pending)
    rows = []
    for i, (key, row) in enumerate(zip(order, pending, strict=True)):
        reads = entity_heads if row.entity is not None else article_heads
        if not reads:
            continue
        rows.append(
            SoftExample(
                text=row.text,
                entity=row.entity,
                teacher={h: tuple(logits[h][i].tolist()) for h in reads},
                gold=gold[key],
            )
        )
    return rows


def distillation_loss(
    logits: Mapping[str, torch.Tensor],
    batch: Sequence[SoftExample],
    head_labels: Mapping[str, list[str]],
    gold_losses: Mapping[str, nn.Module],
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Per head, weighted by the share of the batch's rows it reads (as the supervised loss is):
    (1 - alpha) * T² * KL(teacher_T || student_T) + alpha * gold cross-entropy on labelled rows."""
    device = next(iter(logits.values())).device
    total = torch.zeros((), device=device)
    by_head: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(batch):
        for head in row.teacher:
            by_head[head].append(i)
    for head, members in by_head.items():
        index = torch.tensor(members, device=device)
        student = logits[head][index]
        target = torch.tensor([batch[i].teacher[head] for i in members], device=device)
        soft = nn.functional.kl_div(
            nn.functional.log_softmax(student / temperature, dim=-1),
            nn.functional.log_softmax(target / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        ) * (temperature**2)
        part = (1 - alpha) * soft
        labelled = [(k, batch[i].gold[head]) for k, i in enumerate(members) if head in batch[i].gold]
        if labelled and alpha > 0:
            rows = torch.tensor([k for k, _ in labelled], device=device)
            targets = torch.tensor([head_labels[head].index(label) for _, label in labelled], device=device)
            part = part + alpha * gold_losses[head](student[rows], targets) * (len(labelled) / len(members))
        total = total + part * (len(members) / len(batch))
    return total


def agreement(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Per head shared by both: the share of rows whose top label is the same."""
    return {
        head: float((first[head].argmax(-1) == second[head].argmax(-1)).float().mean())
        for head in first
        if head in second and len(first[head])
    }
