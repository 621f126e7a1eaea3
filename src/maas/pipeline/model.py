"""A tabular network: an embedding per categorical column + an MLP over everything."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network from its weights (saved as JSON)."""

    cardinalities: list[int]
    embedding_dims: list[int]
    numeric_dim: int
    hidden_sizes: list[int]
    dropout: float

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        return cls(**json.loads(path.read_text()))


def embedding_dim(cardinality: int, max_dim: int) -> int:
    """The fastai rule of thumb, capped."""
    return max(1, min(max_dim, round(1.6 * cardinality**0.56)))


def build_model_config(
    cardinalities: list[int],
    numeric_dim: int,
    hidden_sizes: list[int],
    dropout: float,
    embedding_dim_max: int,
) -> ModelConfig:
    return ModelConfig(
        cardinalities=list(cardinalities),
        embedding_dims=[embedding_dim(c, embedding_dim_max) for c in cardinalities],
        numeric_dim=numeric_dim,
        hidden_sizes=list(hidden_sizes),
        dropout=dropout,
    )


class TabularNet(nn.Module):
    """logits = MLP([embeddings(categorical codes), numeric])."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim)
            for card, dim in zip(config.cardinalities, config.embedding_dims, strict=True)
        )
        layers: list[nn.Module] = []
        width = sum(config.embedding_dims) + config.numeric_dim
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        parts.append(numeric)
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


class ProbabilityNet(nn.Module):
    """The exported serving graph: probabilities instead of logits."""

    def __init__(self, net: TabularNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(categorical, numeric))
