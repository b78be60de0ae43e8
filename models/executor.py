"""Batched execution of every active instruction on a batch of texts: one encoder pass, many heads.

Texts are tokenised once, sorted by length and cut into batches bounded by a token budget, so
padding stays minimal and a long article does not inflate a batch of headlines. An instruction
with a taught head (`finsent instructions teach`, installed from the database) uses it; else one
with a trained head (same name and label set) uses that; any other instruction runs zero-shot,
comparing the text's embedding with embeddings of the instruction's label descriptions, each the
mean over several phrasings (`models.fewshot.PROMPT_TEMPLATES`), and its output says so.

Entity-scoped instructions (`classify_items`) are answered from the same pass: each entity's
tokens are located through the tokenizer's character offsets and pooled, and the entity head
reads the pooled text beside them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from connectors.entities import locate
from models.classifier import EntityAnswer, ItemAnswer, Output
from models.encoder import choose_device, configure_cpu_threads
from models.fewshot import PROMPT_TEMPLATES, LinearHead, prior_head, prompts
from models.instructions import Instruction, InstructionSet
from models.network import InstructionModel, entity_head, entity_token_mask, mean_pool
from models.text import prepare_text

log = logging.getLogger(__name__)

CONTEXT_TOKENS = 4  # tokens each side of an entity that its heads-less fallback reads


@dataclass(frozen=True)
class ExecutorOptions:
    """How inference runs. The defaults are the fastest measured on a 2-core CPU (see bench/)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 | int8 (CPU only)
    max_length: int = 128
    token_budget: int = 4096  # padded tokens per forward pass
    max_batch: int = 64
    cpu_threads: int = 0  # 0: every core


class InstructionExecutor:
    """Implements `models.classifier.Classifier` for a (trained or base) `InstructionModel`."""

    def __init__(
        self,
        model: InstructionModel,
        tokenizer: PreTrainedTokenizerBase,
        version: str,
        options: ExecutorOptions | None = None,
    ) -> None:
        self.version = version
        self.options = options or ExecutorOptions()
        self.device = choose_device(self.options.device)
        self.tokenizer = tokenizer
        if self.device.type == "cpu":
            configure_cpu_threads(self.options.cpu_threads)
        self.precision = self._resolve_precision()
        model = model.eval()
        if self.precision == "int8":
            model = _quantise_int8(model)
        self.model = model.to(self.device)
        self._zero_shot_weights: dict[tuple[object, ...], torch.Tensor] = {}
        self._taught: dict[str, LinearHead] = {}

    def _resolve_precision(self) -> str:
        precision = self.options.precision
        if precision == "auto":
            if self.device.type != "cuda":
                return "fp32"
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError("precision int8 (dynamic quantisation) runs on the CPU only")
        if precision not in {"fp32", "bf16", "fp16", "int8"}:
            raise ValueError(f"unknown precision {precision!r}")
        return precision

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision in {"bf16", "fp16"}:
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    # --- embeddings ----------------------------------------------------------------------------

    def _batches(
        self, texts: Sequence[str], offsets: list[list[tuple[int, int]]] | None = None
    ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """Length-sorted batches under the token budget; fills `offsets` (characters of each token
        in the prepared text) when given, for entity pooling."""
        encoded = self.tokenizer(
            [prepare_text(t) for t in texts],
            truncation=True,
            max_length=self.options.max_length,
            padding=False,
            return_offsets_mapping=offsets is not None,
        )
        if offsets is not None:
            offsets.extend([tuple(pair) for pair in row] for row in encoded["offset_mapping"])
        ids: list[list[int]] = encoded["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and end - start < self.options.max_batch
                and (end - start + 1) * len(ids[order[end]]) <= self.options.token_budget
            ):
                end += 1
            members = order[start:end]
            padded = self.tokenizer.pad(
                {"input_ids": [ids[i] for i in members]}, padding=True, return_tensors="pt"
            )
            yield members, {k: v.to(self.device, non_blocking=True) for k, v in padded.items()}
            start = end

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled encoder output per text, float32 on the CPU, in input order."""
        hidden = int(self.model.encoder.config.hidden_size)
        result = torch.empty((len(texts), hidden), dtype=torch.float32)
        if not texts:
            return result
        with torch.inference_mode(), self._autocast():
            for members, batch in self._batches(texts):
                pooled = self.model.embed(batch["input_ids"], batch["attention_mask"])
                result[torch.tensor(members)] = pooled.float().cpu()
        return result

    def embed_entities(
        self, texts: Sequence[str], entities: Sequence[Sequence[str]]
    ) -> tuple[torch.Tensor, EntityFeatures]:
        """One encoder pass: each text's pooled embedding, and for every (text, entity) pair the
        mean over the entity's tokens and over a window of tokens around them. An entity the
        text does not contain (or that truncation cut off) is read as given: its own string is
        embedded, in one extra pass over all such strings of the batch."""
        hidden_size = int(self.model.encoder.config.hidden_size)
        pooled = torch.empty((len(texts), hidden_size), dtype=torch.float32)
        pairs = [(i, name) for i, names in enumerate(entities) for name in names]
        entity_vectors = torch.zeros((len(pairs), hidden_size), dtype=torch.float32)
        context = torch.zeros((len(pairs), hidden_size), dtype=torch.float32)
        found = [False] * len(pairs)
        prepared = [prepare_text(t) for t in texts]
        by_text: dict[int, list[int]] = {}
        for p, (i, _) in enumerate(pairs):
            by_text.setdefault(i, []).append(p)
        offsets: list[list[tuple[int, int]]] = []
        with torch.inference_mode(), self._autocast():
            for members, batch in self._batches(texts, offsets):
                mask = batch["attention_mask"]
                hidden = self.model.encoder(
                    input_ids=batch["input_ids"], attention_mask=mask
                ).last_hidden_state
                pooled[torch.tensor(members)] = mean_pool(hidden, mask).float().cpu()
                rows = [(local, p) for local, i in enumerate(members) for p in by_text.get(i, [])]
                if not rows:
                    continue
                length = mask.shape[1]
                batch_offsets = torch.zeros((len(members), length, 2), dtype=torch.long)
                for local, i in enumerate(members):
                    batch_offsets[local, : len(offsets[i])] = torch.tensor(offsets[i])
                locals_ = torch.tensor([local for local, _ in rows])
                token_mask = entity_token_mask(
                    batch_offsets[locals_], [locate(prepared[pairs[p][0]], pairs[p][1]) for _, p in rows]
                ).to(hidden.device)
                window = nn.functional.max_pool1d(
                    token_mask[:, None, :],
                    kernel_size=2 * CONTEXT_TOKENS + 1,
                    stride=1,
                    padding=CONTEXT_TOKENS,
                )[:, 0, :] * mask[locals_.to(mask.device)].to(token_mask.dtype)
                states = hidden[locals_.to(hidden.device)]
                ent = mean_pool(states, token_mask).float().cpu()
                ctx = mean_pool(states, window).float().cpu()
                present = (token_mask.sum(dim=1) > 0).cpu().tolist()
                for row, (_, p) in enumerate(rows):
                    if present[row]:
                        entity_vectors[p], context[p], found[p] = ent[row], ctx[row], True
        missing = [p for p, ok in enumerate(found) if not ok]
        if missing:
            as_given = self.embed([pairs[p][1] for p in missing])
            entity_vectors[missing] = as_given
            context[missing] = as_given
        for p in range(len(pairs)):
            found[p] = found[p] or bool(locate(prepared[pairs[p][0]], pairs[p][1]))
        return pooled, EntityFeatures(pairs, pooled[[i for i, _ in pairs]], entity_vectors, context, found)

    def zero_shot_head(self, instruction: Instruction) -> LinearHead:
        """The zero-shot classifier as a linear head over pooled embeddings, cached per definition."""
        key = (instruction.name, instruction.text, tuple(instruction.labels.items()))
        cached = self._zero_shot_weights.get(key)
        if cached is None:
            cached = prior_head(self.label_prompt_embeddings(instruction), instruction.label_names).weight
            self._zero_shot_weights[key] = cached
        return LinearHead(tuple(instruction.label_names), cached, torch.zeros(len(instruction.label_names)))

    def label_prompt_embeddings(self, instruction: Instruction) -> torch.Tensor:
        """labels x templates x hidden: every phrasing of every label (`models.fewshot.prompts`)."""
        texts = [p for label in instruction.label_names for p in prompts(instruction, label)]
        return self.embed(texts).reshape(len(instruction.label_names), len(PROMPT_TEMPLATES), -1)

    # --- taught heads --------------------------------------------------------------------------

    def install_taught(self, heads: dict[str, LinearHead]) -> None:
        """Replace the taught heads (by instruction name). One assignment, so a batch running in
        another thread sees either the old set or the new one, never a mix."""
        self._taught = dict(heads)

    @property
    def taught(self) -> dict[str, LinearHead]:
        return dict(self._taught)

    def taught_head_for(self, instruction: Instruction) -> LinearHead | None:
        """The taught head that answers `instruction`: one for the same name and label set."""
        head = self._taught.get(instruction.name)
        return head if head is not None and set(head.labels) == set(instruction.label_names) else None

    # --- classification ------------------------------------------------------------------------

    def head_for(self, instruction: Instruction) -> list[str] | None:
        """The head's label order when this model has a usable trained head for the instruction."""
        labels = self.model.head_labels.get(instruction.name)
        if labels is None or set(labels) != set(instruction.label_names):
            return None
        return labels

    def probabilities(self, pooled: torch.Tensor, instruction: Instruction) -> tuple[torch.Tensor, bool]:
        """(n x labels in the instruction's order, zero_shot) for already-pooled embeddings."""
        taught = self.taught_head_for(instruction)
        if taught is not None:
            probs = taught.probabilities(pooled)
            columns = [taught.labels.index(label) for label in instruction.label_names]
            return probs[:, columns], False
        labels = self.head_for(instruction)
        if labels is not None:
            probs = self._head_probabilities(instruction.name, pooled)
            columns = [labels.index(label) for label in instruction.label_names]
            return probs[:, columns], False
        return self.zero_shot_head(instruction).probabilities(pooled), True

    def entity_probabilities(
        self, features: EntityFeatures, instruction: Instruction
    ) -> tuple[torch.Tensor, bool]:
        """(pairs x labels, zero_shot) for one entity-scoped instruction. With an entity head it
        reads the text and the entity together; without one, the article-level answer (taught,
        trained or zero-shot) is read off the window around the entity instead of the whole text."""
        key = entity_head(instruction.name)
        labels = self.model.head_labels.get(key)
        if labels is None or set(labels) != set(instruction.label_names):
            return self.probabilities(features.context, instruction)
        probs = self._head_probabilities(key, torch.cat([features.text, features.entity], dim=-1))
        columns = [labels.index(label) for label in instruction.label_names]
        return probs[:, columns], False

    def _head_probabilities(self, key: str, features: torch.Tensor) -> torch.Tensor:
        """A trained head's calibrated probabilities (its logits over its temperature)."""
        with torch.inference_mode():
            head = cast(nn.Linear, self.model.heads[key])
            weight, bias = head.weight.detach().float().cpu(), head.bias.detach().float().cpu()
            temperature = self.model.temperatures.get(key, 1.0)
            return torch.softmax((features @ weight.T + bias) / temperature, dim=-1)

    def classify(self, texts: Sequence[str], instructions: InstructionSet) -> list[dict[str, Output]]:
        pooled = _freeing_cuda_on_oom(lambda: self.embed(texts))
        return _answers(len(texts), [(i, *self.probabilities(pooled, i)) for i in instructions.per_article])

    def classify_items(
        self, texts: Sequence[str], instructions: InstructionSet, entities: Sequence[Sequence[str]]
    ) -> list[ItemAnswer]:
        """Article answers and, for every entity of every text, every entity-scoped instruction's
        answer, from one encoder pass over the texts."""
        per_entity = instructions.per_entity
        if not per_entity or not any(entities):
            return [ItemAnswer(article, {}) for article in self.classify(texts, instructions)]
        pooled, features = _freeing_cuda_on_oom(lambda: self.embed_entities(texts, entities))
        articles = _answers(
            len(texts), [(i, *self.probabilities(pooled, i)) for i in instructions.per_article]
        )
        per_pair = _answers(
            len(features.pairs), [(i, *self.entity_probabilities(features, i)) for i in per_entity]
        )
        results = [ItemAnswer(article, {}) for article in articles]
        for p, (i, name) in enumerate(features.pairs):
            results[i].entities[name] = EntityAnswer(features.found[p], per_pair[p])
        return results


@dataclass(frozen=True)
class EntityFeatures:
    """Per (text index, entity) pair: the text's pooled embedding, the entity's, the window's."""

    pairs: list[tuple[int, str]]
    text: torch.Tensor
    entity: torch.Tensor
    context: torch.Tensor
    found: list[bool]


def _answers(n: int, scored: Sequence[tuple[Instruction, torch.Tensor, bool]]) -> list[dict[str, Output]]:
    """n rows of outputs from each instruction's probabilities (rows x labels, in its order)."""
    results: list[dict[str, Output]] = [{} for _ in range(n)]
    for instruction, probs, zero_shot in scored:
        names = instruction.label_names
        best = probs.argmax(dim=-1).tolist()
        for row, (index, values) in enumerate(zip(best, probs.tolist(), strict=True)):
            results[row][instruction.name] = Output(
                label=names[index],
                score=float(values[index]),
                distribution=dict(zip(names, values, strict=True)),
                zero_shot=zero_shot,
            )
    return results


T = TypeVar("T")


def _freeing_cuda_on_oom(run: Callable[[], T]) -> T:
    try:
        return run()
    except torch.OutOfMemoryError:
        # Hand the failed batch's cached blocks back before the caller retries in halves;
        # otherwise the smaller retries can fail on memory the big one left reserved.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise


def _quantise_int8(model: InstructionModel) -> InstructionModel:
    """Dynamic int8 for the encoder's linear layers (weights int8, activations quantised per batch).

    Heads stay float: they are tiny, and zero-shot label embeddings go through the same encoder.
    """
    import copy
    import warnings

    quantised = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantised.encoder = torch.ao.quantization.quantize_dynamic(
            quantised.encoder, {nn.Linear}, dtype=torch.qint8
        )
    return quantised
