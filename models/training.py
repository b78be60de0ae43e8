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
import hashlib
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.calibration import calibration_report
from models.checkpoints import CheckpointStore, run_identity
from models.datasets import DataError, Example, fingerprint
from models.distillation import SoftExample, Teacher, agreement, distillation_loss, soft_examples
from models.evaluation import classification_report
from models.instructions import InstructionSet
from models.network import ENTITY_HEAD, InstructionModel, entity_head, is_entity_head
from models.rows import Row, row_features, tokenise_rows
from models.schedule import MEASURE_STEPS, LinearSchedule, affordable_total
from models.text import prepare_text
from models.train_config import RUN_ONLY_SETTINGS, TrainConfig

log = logging.getLogger(__name__)

MIN_CALIBRATION_ROWS = 20  # fewer validation rows fit a temperature to noise: the head stays raw


@dataclass
class TrainResult:
    model: InstructionModel
    metrics: dict[str, dict[str, Any]]
    config: TrainConfig
    data_fingerprint: str
    counts: dict[str, dict[str, int]]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_step: int | None = None  # the checkpoint's step when the run continued one
    distillation: dict[str, Any] | None = None  # teacher's validation figures and agreement

    def summary(self) -> dict[str, Any]:
        summary = {
            "config": asdict(self.config),
            "data_fingerprint": self.data_fingerprint,
            "counts": self.counts,
            "seconds": round(self.seconds, 1),
            "history": self.history,
            "validation": self.metrics,
        }
        if self.resumed_from_step is not None:
            summary["resumed_from_step"] = self.resumed_from_step
        if self.distillation is not None:
            summary["distillation"] = self.distillation
        return summary


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


BatchLoss = Callable[[dict[str, torch.Tensor], Sequence[Any]], torch.Tensor]


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
        self.clock: Callable[[], float] = time.monotonic  # the time budget's clock (tests step it)

    # --- shared pieces -------------------------------------------------------------------------

    def _add_entity_heads(self, wanted: set[str]) -> None:
        """An entity head only for instructions that have entity examples (or whose teacher has
        one): a head that learned nothing would answer every entity with noise."""
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

    def _tokenise(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        return tokenise_rows(self.tokenizer, rows, self.config.max_length, self.device)

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

    def _length_batches(self, rows: Sequence[Row], rng: random.Random) -> list[list[Any]]:
        """Shuffled batches of similar length: far less padding than random batches, still shuffled."""
        size = self.config.batch_size
        shuffled = list(rows)
        rng.shuffle(shuffled)
        chunk = size * 50
        batches: list[list[Any]] = []
        for start in range(0, len(shuffled), chunk):
            part = sorted(shuffled[start : start + chunk], key=lambda e: len(e.text))
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        rng.shuffle(batches)
        return batches

    def _evaluate(self, val: Sequence[Example], embeddings: torch.Tensor | None = None) -> dict[str, Any]:
        self.model.eval()
        if embeddings is None:
            embeddings = self._embed(val)
        with torch.inference_mode():
            logits = self.model.logits(embeddings.to(self.device))
        return reports_from_logits(logits, val, self.head_labels)

    def _embed(self, rows: Sequence[Row], batch_size: int = 128) -> torch.Tensor:
        return row_features(
            self.model,
            self.tokenizer,
            rows,
            self.config.max_length,
            self.device,
            batch_size=batch_size,
            progress=self.config.progress,
        )

    def _validation_logits(self, val: Sequence[Example]) -> dict[str, torch.Tensor]:
        """The trained model's raw logits on the validation rows, on the CPU: one encoder pass
        that calibration and the comparison with a teacher both read."""
        if not val:
            return {}
        features = self._embed(val)  # eval mode: no dropout
        with torch.inference_mode():
            return {name: value.cpu() for name, value in self.model.logits(features).items()}

    def _calibrate(
        self, val: Sequence[Example], logits: dict[str, torch.Tensor]
    ) -> dict[str, dict[str, Any]]:
        """Fit each head's temperature on the validation rows and report ECE before and after
        (on rows the reported temperature was not fitted on: `calibration_report`)."""
        if not val:
            return {}
        reports: dict[str, dict[str, Any]] = {}
        for name, labels in self.head_labels.items():
            rows = [i for i, e in enumerate(val) if e.head == name]
            if len(rows) < MIN_CALIBRATION_ROWS:
                continue
            targets = torch.tensor([labels.index(val[i].label) for i in rows])
            reports[name] = calibration_report(logits[name][torch.tensor(rows)], targets)
            self.model.temperatures[name] = float(reports[name]["temperature"])
        return reports

    @staticmethod
    def _score(reports: dict[str, Any]) -> float:
        return sum(r["macro_f1"] for r in reports.values()) / max(len(reports), 1)

    def _check_teacher(self, teacher: Teacher) -> None:
        """The student learns the teacher's heads label for label; an instruction whose labels
        differ from the teacher's (edited since the teacher was trained) cannot be distilled."""
        for key, labels in teacher.head_labels.items():
            name = key.removesuffix(ENTITY_HEAD)
            if name not in self.instructions.names():
                raise DataError(f"the teacher has a head for {name!r}, which the student's instructions lack")
            if self.instructions.get(name).label_names != labels:
                raise DataError(
                    f"instruction {name!r}: the teacher's labels {labels} differ from "
                    f"{self.instructions.get(name).label_names}"
                )
        self._add_entity_heads(
            {k.removesuffix(ENTITY_HEAD) for k in teacher.head_labels if is_entity_head(k)}
        )

    # --- entry point ---------------------------------------------------------------------------

    def fit(
        self,
        examples: Sequence[Example],
        teacher: Teacher | None = None,
        unlabelled: Sequence[str] = (),
        entity_texts: Sequence[tuple[str, str]] = (),
    ) -> TrainResult:
        """Train on `examples`; with a `teacher`, distil it on the training side of the same split
        plus `unlabelled` texts and unlabelled (text, entity) pairs, and validate on the same gold
        rows as a plain run would (so teacher, student and plain recipe are compared fairly)."""
        unknown = {e.instruction for e in examples} - set(self.head_labels)
        if unknown:
            raise DataError(f"examples for unknown instructions: {sorted(unknown)}")
        if teacher is not None:
            self._check_teacher(teacher)
        self._add_entity_heads({e.instruction for e in examples if e.entity is not None})
        started = time.monotonic()
        train, val = split(examples, self.config.val_fraction, self.config.seed)
        if not train:
            raise DataError("no training rows left after the validation split")
        losses = {
            name: nn.CrossEntropyLoss(
                label_smoothing=self.config.label_smoothing,
                weight=_class_weights(
                    train,
                    name,
                    labels,
                    self.config.class_weight_power_by.get(name, self.config.class_weight_power),
                ).to(self.device),
            )
            for name, labels in self.head_labels.items()
        }
        rows: Sequence[Any] = train
        batch_loss: BatchLoss = lambda logits, batch: self._loss(logits, batch, losses)  # noqa: E731
        data_identity = fingerprint(examples)
        if teacher is not None:
            rows = soft_examples(teacher, train, unlabelled, entity_texts, exclude=[e.text for e in val])
            if not rows:
                raise DataError("nothing to distil: every text is on the validation side")
            config = self.config

            def batch_loss(logits: dict[str, torch.Tensor], batch: Sequence[Any]) -> torch.Tensor:
                return distillation_loss(
                    logits, batch, self.head_labels, losses, config.distill_temperature, config.distill_alpha
                )

            data_identity = _rows_fingerprint(rows)
        if self.config.mode == "heads":
            history, best_reports = self._fit_heads(rows, val, batch_loss)
            resumed_from = None
        elif self.config.mode == "full":
            history, best_reports, resumed_from = self._fit_full(rows, val, batch_loss, data_identity)
        else:
            raise ValueError(f"unknown training mode {self.config.mode!r}; expected heads or full")
        counts = {
            "train": dict(Counter(e.head for e in train)),
            "validation": dict(Counter(e.head for e in val)),
        }
        val_logits = self._validation_logits(val)
        distillation = None
        if teacher is not None:
            counts["distillation"] = {
                "rows": len(rows),
                "labelled": sum(1 for r in rows if r.gold),
                "unlabelled": sum(1 for r in rows if not r.gold),
            }
            distillation = self._compare_with(teacher, val, val_logits)
        for name, report in self._calibrate(val, val_logits).items():
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
            resumed_from_step=resumed_from,
            distillation=distillation,
        )

    def _compare_with(
        self, teacher: Teacher, val: Sequence[Example], student_logits: dict[str, torch.Tensor]
    ) -> dict[str, Any]:
        """The teacher's figures on the student's validation rows, and how often the two agree."""
        if not val:
            return {"temperature": self.config.distill_temperature, "alpha": self.config.distill_alpha}
        teacher_logits = teacher.logits(val)
        by_head = {head: [i for i, e in enumerate(val) if e.head == head] for head in self.head_labels}
        agree = {
            head: agreement({head: teacher_logits[head][rows]}, {head: student_logits[head][rows]})[head]
            for head, rows in by_head.items()
            if rows and head in teacher_logits
        }
        teacher_reports = reports_from_logits(teacher_logits, val, teacher.head_labels)
        return {
            "temperature": self.config.distill_temperature,
            "alpha": self.config.distill_alpha,
            "teacher_validation": {
                head: {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "n": r["n"]}
                for head, r in teacher_reports.items()
            },
            "agreement": agree,
        }

    def _fit_heads(
        self, train: Sequence[Any], val: list[Example], batch_loss: BatchLoss
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
                loss = batch_loss(logits, batch)
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
            for layer in self._encoder_layers("freeze_layers")[: self.config.freeze_layers]:
                for parameter in layer.parameters():
                    parameter.requires_grad_(False)
        return [p for p in encoder.parameters() if p.requires_grad]

    def _encoder_layers(self, setting: str) -> nn.ModuleList:
        """The encoder's transformer layers, bottom first; `setting` names what needs them."""
        layers = getattr(getattr(self.model.encoder, "encoder", None), "layer", None)
        if layers is None:
            raise ValueError(f"{setting} needs a BERT-like encoder (encoder.encoder.layer)")
        return cast(nn.ModuleList, layers)

    def _encoder_param_groups(self) -> list[dict[str, Any]]:
        """The trainable encoder parameters as optimiser groups: one group at encoder_lr, or, with
        layer_lr_decay < 1, one per layer with the rate falling towards the input (the lower layers
        hold general language the few epochs should disturb least). Groups are built in a fixed
        order, so a checkpoint's optimiser state fits the resumed run's groups."""
        trainable = self._freeze_for_full()
        decay, lr = self.config.layer_lr_decay, self.config.encoder_lr
        if decay == 1.0:
            return [{"params": trainable, "lr": lr}]
        if not 0.0 < decay < 1.0:
            raise ValueError(f"layer_lr_decay {decay}: give a factor in (0, 1], 1 for no decay")
        encoder = self.model.encoder
        layers = self._encoder_layers("layer_lr_decay")
        wanted = {id(p) for p in trainable}
        placed: set[int] = set()

        def group(module: nn.Module, rate: float) -> dict[str, Any]:
            params = [p for p in module.parameters() if id(p) in wanted and id(p) not in placed]
            placed.update(id(p) for p in params)
            return {"params": params, "lr": rate}

        depth = len(layers)
        groups = [group(layer, lr * decay ** (depth - 1 - i)) for i, layer in enumerate(layers)]
        groups.append(group(cast(nn.Module, encoder.embeddings), lr * decay**depth))
        # What sits above the layers (a pooler, a final norm) trains at the top rate.
        groups.append({"params": [p for p in trainable if id(p) not in placed], "lr": lr})
        return [g for g in groups if g["params"]]

    def _fit_full(
        self, train: Sequence[Any], val: list[Example], batch_loss: BatchLoss, data_identity: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any], int | None]:
        optimiser = torch.optim.AdamW(
            [
                *self._encoder_param_groups(),
                {"params": list(self.model.heads.parameters()), "lr": self.config.head_lr},
            ],
            weight_decay=self.config.weight_decay,
        )
        rng = random.Random(self.config.seed)
        steps_per_epoch = -(-len(train) // self.config.batch_size)
        total_steps = max(1, round(steps_per_epoch * self.config.epochs))
        warmup = max(1, int(total_steps * self.config.warmup_fraction))
        progress = _Progress(schedule=LinearSchedule(warmup, total_steps))
        # Reads `progress` when called: a resumed run's progress (and its fitted schedule)
        # replaces the fresh one below, before the first step.
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: progress.plan().multiplier(step)
        )
        store = CheckpointStore(Path(self.config.checkpoint_dir)) if self.config.checkpoint_dir else None
        identity = run_identity(
            data_identity,
            {
                **{k: v for k, v in asdict(self.config).items() if k not in RUN_ONLY_SETTINGS},
                "heads": self.head_labels,
            },
        )
        resumed_from: int | None = None
        if store is not None:
            saved = store.load(identity)
            if saved is not None:
                self.model.load_state_dict(saved["model"])
                optimiser.load_state_dict(saved["optimiser"])
                scheduler.load_state_dict(saved["scheduler"])
                torch.set_rng_state(saved["torch_rng"])
                progress = saved["progress"]
                if progress.schedule is None:  # saved before schedules were fitted: as planned
                    progress.schedule = LinearSchedule(warmup, total_steps)
                resumed_from = progress.done_steps
                log.info(
                    "training resumed from a checkpoint",
                    extra={"event": "train_resumed", "step": progress.done_steps, "epoch": progress.epoch},
                )
        # The budget counts training already done before a kill: a resumed run stops where an
        # uninterrupted one would have, not a whole budget later.
        clock_start = self.clock() - progress.elapsed_s
        deadline = clock_start + self.config.time_budget_s if self.config.time_budget_s is not None else None
        last_save = self.clock()
        # This session's own speed (a resumed run may run on another machine): training steps
        # and the seconds spent in them, and the last validation's duration.
        session_steps, session_s, validation_s = 0, 0.0, None
        fitted_in_session = False

        def fit_schedule() -> None:
            """Aim the decay at the step the remaining budget reaches (models/schedule.py)."""
            if deadline is None or session_steps < MEASURE_STEPS:
                return
            schedule = progress.plan()
            rate = session_s / session_steps
            # Before the first validation: a forward pass over the validation rows, about half
            # a training step per batch (no backward pass, no optimiser).
            val_batches = -(-len(val) // self.config.batch_size)
            val_s = validation_s if validation_s is not None else 0.5 * rate * val_batches
            fitted = affordable_total(
                done=progress.done_steps,
                total=schedule.total,
                steps_per_epoch=steps_per_epoch,
                seconds_per_step=rate,
                validation_s=val_s if val else 0.0,
                seconds_left=deadline - self.clock(),
            )
            if schedule.refit(progress.done_steps, fitted):
                log.info(
                    "learning-rate schedule fitted to the time budget",
                    extra={
                        "event": "train_schedule_fitted",
                        "step": progress.done_steps,
                        "planned_steps": schedule.planned_total,
                        "fitted_steps": schedule.total,
                        "seconds_per_step": round(rate, 3),
                    },
                )

        def save() -> None:
            nonlocal last_save
            if store is None:
                return
            progress.elapsed_s = self.clock() - clock_start
            store.save(
                identity,
                {
                    "model": self.model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "progress": progress,
                },
            )
            last_save = self.clock()

        while progress.done_steps < progress.plan().total or progress.step_in_epoch:
            if progress.step_in_epoch == 0:
                # A new epoch: remember the shuffler's state before it deals this epoch's batches,
                # so that a resume in the middle of the epoch deals the very same ones.
                progress.epoch += 1
                progress.epoch_rng = rng.getstate()
                progress.running = 0.0
            else:
                rng.setstate(progress.epoch_rng)
            self.model.train()
            at_epoch_start = progress.done_steps - progress.step_in_epoch
            batches = self._length_batches(train, rng)[: progress.plan().total - at_epoch_start]
            bar = tqdm(
                batches,
                desc=f"epoch {progress.epoch}/{self.config.epochs:g}",
                initial=progress.step_in_epoch,
                disable=not self.config.progress,
            )
            out_of_time = False
            for batch in batches[progress.step_in_epoch :]:
                step_started = self.clock()
                inputs = self._tokenise(batch)
                features = self.model.features(
                    inputs["input_ids"], inputs["attention_mask"], inputs["entity_mask"]
                )
                loss = batch_loss(self.model.logits(features), batch)
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimiser.step()
                scheduler.step()
                progress.done_steps += 1
                progress.step_in_epoch += 1
                progress.running += loss.item()
                bar.update(1)
                if progress.step_in_epoch % 20 == 0:
                    bar.set_postfix(loss=f"{progress.running / progress.step_in_epoch:.4f}")
                session_steps += 1
                session_s += self.clock() - step_started
                if not fitted_in_session and session_steps >= MEASURE_STEPS and progress.done_steps >= warmup:
                    fit_schedule()
                    fitted_in_session = True
                if deadline is not None and self.clock() > deadline:
                    out_of_time = True
                    break
                every = self.config.checkpoint_every_steps
                if (every and progress.done_steps % every == 0) or (
                    self.clock() - last_save > self.config.checkpoint_every_s
                ):
                    save()
                if progress.done_steps >= progress.plan().total:
                    break  # a fitted schedule ends before the batches dealt for this epoch
            bar.close()
            steps_this_epoch = max(1, progress.step_in_epoch)
            progress.step_in_epoch = 0
            stop = out_of_time
            if val:
                validation_started = self.clock()
                reports = self._evaluate(val)
                validation_s = self.clock() - validation_started
                score = self._score(reports)
                entry: dict[str, Any] = {
                    "epoch": progress.epoch,
                    "steps": progress.done_steps,
                    "train_loss": progress.running / steps_this_epoch,
                    "score": score,
                    **{f"{name}_accuracy": r["accuracy"] for name, r in reports.items()},
                    **{f"{name}_macro_f1": r["macro_f1"] for name, r in reports.items()},
                }
                progress.history.append(entry)
                log.info("epoch finished", extra={"event": "train_epoch", **entry})
                if self.on_epoch is not None:
                    self.on_epoch(entry)
                if progress.best is None or score > progress.best[0]:
                    state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                    progress.best, progress.stale = (score, state, reports), 0
                else:
                    progress.stale += 1
                    stop = stop or progress.stale >= self.config.patience
            if out_of_time:
                log.warning("training time budget spent", extra={"event": "train_time_budget"})
            if stop:
                break
            fit_schedule()  # again with the validation's measured duration
            save()  # an epoch's validation (minutes on a CPU) is not redone after a kill
        if progress.best is not None:
            self.model.load_state_dict(progress.best[1])
            return progress.history, progress.best[2], resumed_from
        return progress.history, {}, resumed_from


@dataclass
class _Progress:
    """Where a `full` run stands: all that a checkpoint needs besides the tensors' states."""

    epoch: int = 0
    done_steps: int = 0
    step_in_epoch: int = 0
    epoch_rng: Any = None
    running: float = 0.0
    elapsed_s: float = 0.0
    stale: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: tuple[float, dict[str, torch.Tensor], dict[str, Any]] | None = None
    # None in checkpoints written before schedules were fitted (read as the class default).
    schedule: LinearSchedule | None = None

    def plan(self) -> LinearSchedule:
        assert self.schedule is not None, "the trainer sets a schedule before the first step"
        return self.schedule


def reports_from_logits(
    logits: Mapping[str, torch.Tensor], val: Sequence[Example], head_labels: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Per head with validation rows: the classification report of the logits' top labels."""
    reports: dict[str, Any] = {}
    for name, labels in head_labels.items():
        rows = [i for i, e in enumerate(val) if e.head == name]
        if not rows or name not in logits:
            continue
        head_logits = logits[name]
        predicted = head_logits[torch.tensor(rows, device=head_logits.device)].argmax(-1).tolist()
        reports[name] = classification_report(
            [val[i].label for i in rows], [labels[p] for p in predicted], labels
        )
    return reports


def _rows_fingerprint(rows: Sequence[SoftExample]) -> str:
    """Identifies a distillation set for checkpoints: its texts, entities and gold labels (the
    teacher's logits follow from the teacher, whose version the caller keeps the same)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.text}\x1f{row.entity}\x1f{sorted(row.gold.items())}\x1e".encode())
    return digest.hexdigest()[:16]
