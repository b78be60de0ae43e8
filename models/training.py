"""Multi-task training of instruction heads, with or without fine-tuning the encoder.

`heads`: the encoder is frozen; every text is embedded once and only the linear heads learn (fast
on a CPU). `full`: encoder and heads learn together; each mini-batch mixes instructions and each
row's loss comes from the head of the instruction it is labelled for.

A validation split is held out per instruction and label (stratified), after removing duplicate
texts so that no headline sits on both sides. The best epoch by mean macro-F1 over instructions is
kept (early stopping with patience). Everything random is seeded: the same data, config and seed
give the same model on the same machine.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import nn
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from connectors.entities import locate
from models.calibration import calibration_report
from models.datasets import DataError, Example, fingerprint
from models.evaluation import classification_report
from models.instructions import InstructionSet
from models.network import InstructionModel, entity_head, entity_token_mask
from models.text import prepare_text

log = logging.getLogger(__name__)

MIN_CALIBRATION_ROWS = 20  # fewer validation rows fit a temperature to noise: the head stays raw


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
    freeze_embeddings: bool = True  # word embeddings barely move in fine-tuning and cost optimiser time
    freeze_layers: int = 0  # bottom encoder layers kept frozen in `full` mode (faster backward pass)
    time_budget_s: float | None = None  # `full` mode stops (and validates) when this is spent
    heads_epochs: int = 60  # passes over cached embeddings in `heads` mode
    device: str = "cpu"
    progress: bool = True


@dataclass
class TrainResult:
    model: InstructionModel
    metrics: dict[str, dict[str, Any]]
    config: TrainConfig
    data_fingerprint: str
    counts: dict[str, dict[str, int]]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "data_fingerprint": self.data_fingerprint,
            "counts": self.counts,
            "seconds": round(self.seconds, 1),
            "history": self.history,
            "validation": self.metrics,
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def split(examples: Sequence[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Deduplicate by (head, text, entity), then hold out `val_fraction` of every (head, label)."""
    seen: set[tuple[str, str, str | None]] = set()
    unique: list[Example] = []
    for example in examples:
        key = (example.head, prepare_text(example.text).casefold(), example.entity)
        if key not in seen:
            seen.add(key)
            unique.append(example)
    groups: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for example in unique:
        groups[(example.head, example.label)].append(example)
    train: list[Example] = []
    val: list[Example] = []
    for group in sorted(groups):
        members = groups[group]
        # Each group shuffled by its own seeded generator: adding a data set (a new head, a new
        # label) leaves every other group's validation rows as they were, so two recipes that
        # share a data set are validated on the same rows of it.
        random.Random(f"{seed}:{group[0]}:{group[1]}").shuffle(members)
        n_val = round(len(members) * val_fraction) if len(members) >= 5 else 0
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    random.Random(seed).shuffle(train)
    return train, val


def _class_weights(train: Sequence[Example], name: str, labels: list[str], power: float) -> torch.Tensor:
    counts = Counter(e.label for e in train if e.head == name)
    total = sum(counts.values())
    weights = torch.tensor([(total / (len(labels) * max(counts[label], 1))) ** power for label in labels])
    return weights / (weights * torch.tensor([counts[label] for label in labels])).sum() * total


class Trainer:
    def __init__(
        self,
        encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        instructions: InstructionSet,
        config: TrainConfig,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.instructions = instructions
        self.head_labels = {i.name: i.label_names for i in instructions.instructions}
        seed_everything(config.seed)
        self.model = InstructionModel(encoder, self.head_labels)
        self.device = torch.device(config.device)
        self.model.to(self.device)
        self.on_epoch = on_epoch

    # --- shared pieces -------------------------------------------------------------------------

    def _add_entity_heads(self, examples: Sequence[Example]) -> None:
        """An entity head only for instructions that have entity examples: a head that learned
        nothing would answer every entity with noise."""
        wanted = {e.instruction for e in examples if e.entity is not None}
        for name in sorted(wanted):
            instruction = self.instructions.get(name)
            if not instruction.per_entity:
                raise DataError(f"entity examples for {name!r}, whose scope is {instruction.scope!r}")
            key = entity_head(name)
            if key not in self.head_labels:
                self.head_labels[key] = instruction.label_names
                self.model.head_labels[key] = instruction.label_names
                self.model.heads[key] = nn.Linear(2 * self.model.hidden, len(instruction.label_names)).to(
                    self.device
                )

    def _tokenise(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask and entity_mask (the tokens of each row's entity, wherever it
        occurs in the text; all zero for article rows)."""
        prepared = [prepare_text(e.text) for e in examples]
        batch = self.tokenizer(
            prepared,
            truncation=True,
            max_length=self.config.max_length,
            padding=True,
            return_tensors="pt",
            return_offsets_mapping=True,
        )
        batch["entity_mask"] = entity_token_mask(
            batch["offset_mapping"],
            [locate(t, e.entity) if e.entity else () for t, e in zip(prepared, examples, strict=True)],
        )
        keep = {"input_ids", "attention_mask", "entity_mask"}
        return {k: v.to(self.device) for k, v in batch.items() if k in keep}

    def _targets(self, batch: Sequence[Example]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per head: (row indices in the batch, label indices)."""
        rows: dict[str, list[int]] = defaultdict(list)
        labels: dict[str, list[int]] = defaultdict(list)
        for i, example in enumerate(batch):
            rows[example.head].append(i)
            labels[example.head].append(self.head_labels[example.head].index(example.label))
        return {
            name: (
                torch.tensor(rows[name], device=self.device),
                torch.tensor(labels[name], device=self.device),
            )
            for name in rows
        }

    def _loss(
        self, logits: dict[str, torch.Tensor], batch: Sequence[Example], losses: Mapping[str, nn.Module]
    ) -> torch.Tensor:
        total = torch.zeros((), device=self.device)
        for name, (rows, targets) in self._targets(batch).items():
            total = total + losses[name](logits[name][rows], targets) * (len(rows) / len(batch))
        return total

    def _length_batches(self, examples: Sequence[Example], rng: random.Random) -> list[list[Example]]:
        """Shuffled batches of similar length: far less padding than random batches, still shuffled."""
        size = self.config.batch_size
        shuffled = list(examples)
        rng.shuffle(shuffled)
        chunk = size * 50
        batches: list[list[Example]] = []
        for start in range(0, len(shuffled), chunk):
            part = sorted(shuffled[start : start + chunk], key=lambda e: len(e.text))
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        rng.shuffle(batches)
        return batches

    def _evaluate(self, val: Sequence[Example], embeddings: torch.Tensor | None = None) -> dict[str, Any]:
        self.model.eval()
        if embeddings is None:
            embeddings = self._embed(val)
        reports: dict[str, Any] = {}
        with torch.inference_mode():
            logits = self.model.logits(embeddings.to(self.device))
        for name, labels in self.head_labels.items():
            rows = [i for i, e in enumerate(val) if e.head == name]
            if not rows:
                continue
            predicted = logits[name][torch.tensor(rows, device=self.device)].argmax(-1).tolist()
            reports[name] = classification_report(
                [val[i].label for i in rows], [labels[p] for p in predicted], labels
            )
        return reports

    def _embed(self, examples: Sequence[Example], batch_size: int = 128) -> torch.Tensor:
        """n x 2H features (`InstructionModel.features`) of the examples, in their order."""
        self.model.eval()
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].text))
        out = torch.empty((len(examples), 2 * self.model.hidden), device=self.device)
        with torch.inference_mode():
            for start in tqdm(
                range(0, len(order), batch_size),
                desc="embedding",
                leave=False,
                disable=not self.config.progress,
            ):
                members = order[start : start + batch_size]
                batch = self._tokenise([examples[i] for i in members])
                out[torch.tensor(members, device=self.device)] = self.model.features(
                    batch["input_ids"], batch["attention_mask"], batch["entity_mask"]
                ).float()
        return out

    def _calibrate(self, val: Sequence[Example]) -> dict[str, dict[str, Any]]:
        """Fit each head's temperature on the validation rows and report ECE before and after
        (on rows the reported temperature was not fitted on: `calibration_report`)."""
        if not val:
            return {}
        self.model.eval()
        features = self._embed(val)
        with torch.inference_mode():
            logits = self.model.logits(features)
        reports: dict[str, dict[str, Any]] = {}
        for name, labels in self.head_labels.items():
            rows = [i for i, e in enumerate(val) if e.head == name]
            if len(rows) < MIN_CALIBRATION_ROWS:
                continue
            targets = torch.tensor([labels.index(val[i].label) for i in rows])
            reports[name] = calibration_report(
                logits[name][torch.tensor(rows, device=self.device)].cpu(), targets
            )
            self.model.temperatures[name] = float(reports[name]["temperature"])
        return reports

    @staticmethod
    def _score(reports: dict[str, Any]) -> float:
        return sum(r["macro_f1"] for r in reports.values()) / max(len(reports), 1)

    # --- entry point ---------------------------------------------------------------------------

    def fit(self, examples: Sequence[Example]) -> TrainResult:
        unknown = {e.instruction for e in examples} - set(self.head_labels)
        if unknown:
            raise DataError(f"examples for unknown instructions: {sorted(unknown)}")
        self._add_entity_heads(examples)
        started = time.monotonic()
        train, val = split(examples, self.config.val_fraction, self.config.seed)
        if not train:
            raise DataError("no training rows left after the validation split")
        losses = {
            name: nn.CrossEntropyLoss(
                weight=_class_weights(
                    train,
                    name,
                    labels,
                    self.config.class_weight_power_by.get(name, self.config.class_weight_power),
                ).to(self.device)
            )
            for name, labels in self.head_labels.items()
        }
        if self.config.mode == "heads":
            history, best_reports = self._fit_heads(train, val, losses)
        elif self.config.mode == "full":
            history, best_reports = self._fit_full(train, val, losses)
        else:
            raise ValueError(f"unknown training mode {self.config.mode!r}; expected heads or full")
        counts = {
            "train": dict(Counter(e.head for e in train)),
            "validation": dict(Counter(e.head for e in val)),
        }
        for name, report in self._calibrate(val).items():
            best_reports.setdefault(name, {})["calibration"] = report
        self.model.eval()
        return TrainResult(
            model=self.model,
            metrics=best_reports,
            config=self.config,
            data_fingerprint=fingerprint(examples),
            counts=counts,
            seconds=time.monotonic() - started,
            history=history,
        )

    def _fit_heads(
        self, train: list[Example], val: list[Example], losses: Mapping[str, nn.Module]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        for parameter in self.model.encoder.parameters():
            parameter.requires_grad_(False)
        train_x = self._embed(train)
        val_x = self._embed(val) if val else None
        optimiser = torch.optim.AdamW(
            self.model.heads.parameters(), lr=self.config.head_lr * 5, weight_decay=self.config.weight_decay
        )
        rng = random.Random(self.config.seed)
        history: list[dict[str, Any]] = []
        best: tuple[float, dict[str, torch.Tensor], dict[str, Any]] | None = None
        stale = 0
        indices = list(range(len(train)))
        for epoch in tqdm(range(self.config.heads_epochs), desc="heads", disable=not self.config.progress):
            self.model.train()
            rng.shuffle(indices)
            for start in range(0, len(indices), 256):
                members = indices[start : start + 256]
                batch = [train[i] for i in members]
                logits = self.model.logits(train_x[torch.tensor(members, device=self.device)])
                loss = self._loss(logits, batch, losses)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if val_x is None:
                continue
            reports = self._evaluate(val, val_x)
            score = self._score(reports)
            history.append({"epoch": epoch + 1, "score": score})
            if best is None or score > best[0]:
                best, stale = (score, copy.deepcopy(self.model.heads.state_dict()), reports), 0
            else:
                stale += 1
                if stale > self.config.patience * 5:
                    break
        if best is not None:
            self.model.heads.load_state_dict(best[1])
            return history, best[2]
        return history, {}

    def _freeze_for_full(self) -> list[nn.Parameter]:
        encoder = self.model.encoder
        if self.config.freeze_embeddings or self.config.freeze_layers:
            encoder.get_input_embeddings().weight.requires_grad_(False)
        if self.config.freeze_layers:
            embeddings = cast(nn.Module, encoder.embeddings)
            for parameter in embeddings.parameters():
                parameter.requires_grad_(False)
            layers = getattr(getattr(encoder, "encoder", None), "layer", None)
            if layers is None:
                raise ValueError("freeze_layers needs a BERT-like encoder (encoder.encoder.layer)")
            for layer in layers[: self.config.freeze_layers]:
                for parameter in layer.parameters():
                    parameter.requires_grad_(False)
        return [p for p in encoder.parameters() if p.requires_grad]

    def _fit_full(
        self, train: list[Example], val: list[Example], losses: Mapping[str, nn.Module]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        optimiser = torch.optim.AdamW(
            [
                {"params": self._freeze_for_full(), "lr": self.config.encoder_lr},
                {"params": list(self.model.heads.parameters()), "lr": self.config.head_lr},
            ],
            weight_decay=self.config.weight_decay,
        )
        rng = random.Random(self.config.seed)
        steps_per_epoch = -(-len(train) // self.config.batch_size)
        total_steps = max(1, round(steps_per_epoch * self.config.epochs))
        warmup = max(1, int(total_steps * self.config.warmup_fraction))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser,
            lambda step: min(
                (step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            ),
        )
        deadline = (
            time.monotonic() + self.config.time_budget_s if self.config.time_budget_s is not None else None
        )
        history: list[dict[str, Any]] = []
        best: tuple[float, dict[str, torch.Tensor], dict[str, Any]] | None = None
        stale = 0
        done_steps = 0
        epoch = 0
        while done_steps < total_steps:
            epoch += 1
            self.model.train()
            batches = self._length_batches(train, rng)[: total_steps - done_steps]
            bar = tqdm(
                batches, desc=f"epoch {epoch}/{self.config.epochs:g}", disable=not self.config.progress
            )
            running = 0.0
            out_of_time = False
            for step, batch in enumerate(bar, 1):
                inputs = self._tokenise(batch)
                features = self.model.features(
                    inputs["input_ids"], inputs["attention_mask"], inputs["entity_mask"]
                )
                loss = self._loss(self.model.logits(features), batch, losses)
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimiser.step()
                scheduler.step()
                done_steps += 1
                running += loss.item()
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{running / step:.4f}")
                if deadline is not None and time.monotonic() > deadline:
                    out_of_time = True
                    break
            bar.close()
            if not val:
                continue
            reports = self._evaluate(val)
            score = self._score(reports)
            entry: dict[str, Any] = {
                "epoch": epoch,
                "steps": done_steps,
                "train_loss": running / max(1, step),
                "score": score,
                **{f"{name}_accuracy": r["accuracy"] for name, r in reports.items()},
                **{f"{name}_macro_f1": r["macro_f1"] for name, r in reports.items()},
            }
            history.append(entry)
            log.info("epoch finished", extra={"event": "train_epoch", **entry})
            if self.on_epoch is not None:
                self.on_epoch(entry)
            if best is None or score > best[0]:
                state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                best, stale = (score, state, reports), 0
            else:
                stale += 1
                if stale >= self.config.patience:
                    break
            if out_of_time:
                log.warning("training time budget spent", extra={"event": "train_time_budget"})
                break
        if best is not None:
            self.model.load_state_dict(best[1])
            return history, best[2]
        return history, {}
