"""The shared encoder with one small head per trained instruction.

Every head reads the same mean-pooled representation, so one forward pass of the encoder serves
all instructions; adding an instruction adds a linear layer, not another encoder.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-6)


class InstructionModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, head_labels: dict[str, list[str]], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.head_labels = {name: list(labels) for name, labels in head_labels.items()}
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden, len(labels)) for name, labels in head_labels.items()}
        )

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def logits(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.dropout(pooled)
        return {name: head(features) for name, head in self.heads.items()}
