"""The shared encoder with one small head per trained instruction and scope.

Every head reads the same encoder pass, so one forward pass serves all instructions; adding an
instruction adds a linear layer, not another encoder. An article head reads the mean-pooled
text; an entity head (`NAME@entity`) reads the mean-pooled text next to the mean over the
entity's own tokens, taken from the same pass, so "how is this news for ENTITY?" costs no
extra encoder work.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

ENTITY_HEAD = "@entity"


def entity_head(name: str) -> str:
    """The head key of an instruction's entity scope."""
    return f"{name}{ENTITY_HEAD}"


def is_entity_head(key: str) -> bool:
    return key.endswith(ENTITY_HEAD)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-6)


class InstructionModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, head_labels: dict[str, list[str]], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.head_labels = {name: list(labels) for name, labels in head_labels.items()}
        hidden = int(encoder.config.hidden_size)
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(hidden * 2 if is_entity_head(name) else hidden, len(labels))
                for name, labels in head_labels.items()
            }
        )
        # Per head: logits are divided by it before the softmax (`models.calibration`); 1 = raw.
        self.temperatures: dict[str, float] = {}

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, entity_mask: torch.Tensor
    ) -> torch.Tensor:
        """n x 2H: the pooled text, then the mean over each row's entity tokens (`entity_mask`,
        n x length; zeros where a row has no entity, which article heads never read)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return torch.cat([mean_pool(hidden, attention_mask), mean_pool(hidden, entity_mask)], dim=-1)

    def logits(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's logits. `features` is n x H (article heads only) or n x 2H (all heads)."""
        dropped = self.dropout(features)
        with_entities = features.shape[-1] == 2 * self.hidden
        return {
            name: head(dropped if is_entity_head(name) else dropped[..., : self.hidden])
            for name, head in self.heads.items()
            if with_entities or not is_entity_head(name)
        }


def entity_token_mask(offsets: torch.Tensor, spans: list[tuple[tuple[int, int], ...]]) -> torch.Tensor:
    """n x length float mask of the tokens whose characters (`offsets`, n x length x 2, from a fast
    tokenizer) overlap a row's entity spans. Special and padding tokens have empty offsets and are
    never part of an entity; a span cut off by truncation leaves its row all zero."""
    mask = torch.zeros(offsets.shape[:2], dtype=torch.bool)
    starts, ends = offsets[..., 0], offsets[..., 1]
    real = ends > starts
    for row, row_spans in enumerate(spans):
        for start, end in row_spans:
            mask[row] |= real[row] & (starts[row] < end) & (ends[row] > start)
    return mask.float()
