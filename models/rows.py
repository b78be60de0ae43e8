"""Turning training rows (a text, and for entity rows the entity it is about) into model features.

Training, validation, calibration and a distillation teacher all read rows the same way: the
same text preparation, the same truncation and the same entity-token mask. One function each keeps
a teacher's targets and a student's inputs from drifting apart (a teacher reading the text before
`prepare_text` and a student after it would teach labels for inputs the student never sees).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from connectors.entities import locate
from models.network import InstructionModel, entity_token_mask
from models.text import prepare_text


class Row(Protocol):
    """What the encoder reads of a training row: `Example` and `SoftExample` both are one."""

    @property
    def text(self) -> str: ...

    @property
    def entity(self) -> str | None: ...


def tokenise_rows(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[Row], max_length: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and entity_mask (the tokens of each row's entity, wherever it
    occurs in the text; all zero for article rows)."""
    prepared = [prepare_text(row.text) for row in rows]
    batch = tokenizer(
        prepared,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
        return_offsets_mapping=True,
    )
    batch["entity_mask"] = entity_token_mask(
        batch["offset_mapping"],
        [locate(t, row.entity) if row.entity else () for t, row in zip(prepared, rows, strict=True)],
    )
    keep = {"input_ids", "attention_mask", "entity_mask"}
    return {k: v.to(device) for k, v in batch.items() if k in keep}


def row_features(
    model: InstructionModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Row],
    max_length: int,
    device: torch.device,
    batch_size: int = 128,
    progress: bool = False,
    desc: str = "embedding",
) -> torch.Tensor:
    """n x 2H features (`InstructionModel.features`) of the rows, in their order, in eval mode."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].text))
    out = torch.empty((len(rows), 2 * model.hidden), device=device)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=not progress):
            members = order[start : start + batch_size]
            batch = tokenise_rows(tokenizer, [rows[i] for i in members], max_length, device)
            out[torch.tensor(members, device=device)] = model.features(
                batch["input_ids"], batch["attention_mask"], batch["entity_mask"]
            ).float()
    return out
