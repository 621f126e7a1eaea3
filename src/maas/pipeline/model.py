"""The networks: `mlp` (an embedding per categorical column + an MLP) and `tabm` (TabM, the
`tabm` package), either with embeddings of the numeric inputs (`rtdl-num-embeddings`)."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maas.config import ModelParams


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network from its weights (saved as JSON)."""

    cardinalities: list[int]
    embedding_dims: list[int]
    numeric_dim: int
    hidden_sizes: list[int]
    dropout: float
    kind: str = "mlp"
    numeric_embedding: str = "none"
    d_embedding: int = 0
    bins: list[list[float]] = field(default_factory=list)  # piecewise_linear: edges per column
    k: int = 1  # tabm: ensemble size
    n_blocks: int = 0
    d_block: int = 0

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


def model_config_for(
    model: ModelParams, cardinalities: list[int], fit_numeric: np.ndarray
) -> ModelConfig:
    """The network `model` (params.yaml) describes, sized for these inputs; piecewise-linear
    bins come from the rows preprocessing was fitted on."""
    config = build_model_config(cardinalities, fit_numeric.shape[1], model.hidden_sizes,
                                model.dropout, model.embedding_dim_max)  # fmt: skip
    embedding = model.numeric_embeddings
    if embedding.kind == "piecewise_linear":
        config = replace(config, bins=numeric_bins(fit_numeric, embedding.n_bins))
    if embedding.kind != "none":
        config = replace(config, numeric_embedding=embedding.kind,
                         d_embedding=embedding.d_embedding)  # fmt: skip
    if model.kind == "tabm":
        config = replace(config, kind="tabm", k=model.tabm.k, n_blocks=model.tabm.n_blocks,
                         d_block=model.tabm.d_block)  # fmt: skip
    return config


def numeric_bins(numeric: np.ndarray, n_bins: int) -> list[list[float]]:
    """Quantile bin edges per column; a column with one value (a missing-value flag that never
    fires in these rows) gets one bin, where `rtdl_num_embeddings.compute_bins` would refuse
    the whole matrix."""
    edges = []
    for column in np.asarray(numeric, dtype=np.float64).T:
        unique = np.unique(np.quantile(column, np.linspace(0, 1, n_bins + 1)))
        if len(unique) < 2:
            unique = np.array([unique[0], unique[0] + 1.0])
        edges.append([float(edge) for edge in unique])
    return edges


def numeric_embedding(config: ModelConfig) -> nn.Module | None:
    if config.numeric_embedding == "none":
        return None
    import rtdl_num_embeddings as rtdl

    if config.numeric_embedding == "piecewise_linear":
        bins = [torch.tensor(edges, dtype=torch.float32) for edges in config.bins]
        with warnings.catch_warnings():  # one bin is expected: missing-value flags, constants
            warnings.filterwarnings("ignore", message=".*just two bin edges")
            return rtdl.PiecewiseLinearEmbeddings(bins, config.d_embedding, activation=False,
                                                  version="B")  # fmt: skip
    return rtdl.PeriodicEmbeddings(config.numeric_dim, config.d_embedding, lite=False)


def build_network(config: ModelConfig) -> nn.Module:
    """The untrained network of `config` (the kind it names)."""
    return TabMNet(config) if config.kind == "tabm" else TabularNet(config)


def _numeric_width(config: ModelConfig) -> int:
    per_column = config.d_embedding if config.numeric_embedding != "none" else 1
    return config.numeric_dim * per_column


class TabularNet(nn.Module):
    """logits = MLP([embeddings(categorical codes), numeric (or its embeddings)])."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim)
            for card, dim in zip(config.cardinalities, config.embedding_dims, strict=True)
        )
        self.numeric_embedding = numeric_embedding(config)
        layers: list[nn.Module] = []
        width = sum(config.embedding_dims) + _numeric_width(config)
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.numeric_embedding is not None:
            numeric = self.numeric_embedding(numeric).flatten(1)
        parts.append(numeric)
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


class TabMNet(nn.Module):
    """TabM over [numeric (or its embeddings), one-hot categorical codes], as `tabm.TabM`
    builds it (its defaults and initialization).

    Training returns the k members' logits (batch, k): each member is fitted on its own, the
    TabM recipe. In eval mode it returns the logit of the members' mean probability, so
    everything downstream (`ProbabilityNet`, metrics, the ONNX graph) sees one model.
    The forward runs TabM's parts itself: `TabM.forward` reads the batch size as a Python int,
    which would fix the exported graph's batch axis."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import tabm

        self.config = config
        self.tabm = tabm.TabM.make(
            n_num_features=config.numeric_dim, cat_cardinalities=list(config.cardinalities),
            num_embeddings=numeric_embedding(config), d_out=1, k=config.k,
            n_blocks=config.n_blocks, d_block=config.d_block, dropout=config.dropout,
        )  # fmt: skip

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        model: Any = self.tabm
        if model.num_module is not None:
            numeric = model.num_module(numeric)
        parts = [numeric.flatten(1)]
        parts += [nn.functional.one_hot(categorical[:, i], card).to(parts[0].dtype)
                  for i, card in enumerate(self.config.cardinalities)]  # fmt: skip
        logits = model.output(model.backbone(model.ensemble_view(torch.cat(parts, dim=1))))
        logits = logits.squeeze(-1)  # (batch, k)
        if self.training:
            return logits
        return torch.logit(torch.sigmoid(logits.float()).mean(dim=1), eps=1e-7)


class ProbabilityNet(nn.Module):
    """The exported serving graph: probabilities instead of logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(categorical, numeric))
