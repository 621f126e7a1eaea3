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
from maas.errors import TrainingError


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
    # the head: binary (one logit), multiclass (a logit per class), regression (one value,
    # trained standardized: the serving graph returns value * target_std + target_mean, then
    # expm1 of it when the label is trained as log1p(label), `target_transform`)
    head: str = "binary"
    n_outputs: int = 1
    target_mean: float = 0.0
    target_std: float = 1.0
    target_transform: str = "none"
    # multiclass: the decision rule, offsets added to the class logits before the softmax,
    # chosen on the validation slice for the gate's metric (maas.pipeline.training.decision);
    # the served probabilities and their argmax carry it. Empty: none.
    class_bias: list[float] = field(default_factory=list)

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
    model: ModelParams, cardinalities: list[int], fit_numeric: np.ndarray, head: Head | None = None
) -> ModelConfig:
    """The network `model` (params.yaml) describes, sized for these inputs and the task's head
    (default: binary); piecewise-linear bins come from the rows preprocessing was fitted on."""
    config = build_model_config(
        cardinalities,
        fit_numeric.shape[1],
        model.hidden_sizes,
        model.dropout,
        model.embedding_dim_max,
    )
    if head is not None:
        config = replace(
            config,
            head=head.kind,
            n_outputs=head.n_outputs,
            target_mean=head.target_mean,
            target_std=head.target_std,
            target_transform=head.transform,
        )
    embedding = model.numeric_embeddings
    if embedding.kind == "auto":  # a choice between models, not one (training.candidates)
        raise ValueError("model.numeric_embeddings.kind auto: configure each candidate model")
    if embedding.kind == "piecewise_linear":
        config = replace(config, bins=numeric_bins(fit_numeric, embedding.n_bins))
    if embedding.kind != "none":
        config = replace(
            config, numeric_embedding=embedding.kind, d_embedding=embedding.d_embedding
        )
    if model.kind == "tabm":
        config = replace(
            config,
            kind="tabm",
            k=model.tabm.k,
            n_blocks=model.tabm.n_blocks,
            d_block=model.tabm.d_block,
        )
    return config


@dataclass(frozen=True)
class Head:
    """The output of a task's network: its kind, width and (regression) the training label's
    mean and standard deviation, which the network learns to predict in units of, computed in
    float64 after the label's `transform` (`log1p`: a skewed positive label is learned as
    log(1 + label), and the serving graph returns expm1 of the prediction)."""

    kind: str = "binary"
    n_outputs: int = 1
    target_mean: float = 0.0
    target_std: float = 1.0
    transform: str = "none"

    @classmethod
    def for_labels(
        cls, kind: str, labels: np.ndarray, n_classes: int = 2, transform: str = "none"
    ) -> Head:
        if kind == "multiclass":
            return cls(kind, n_classes)
        if kind == "regression":
            values = transformed(np.asarray(labels, dtype=np.float64), transform)
            std = float(values.std())
            return cls(kind, 1, float(values.mean()), std if std > 0 else 1.0, transform)
        return cls()

    @classmethod
    def of(cls, config: ModelConfig) -> Head:
        return cls(
            config.head,
            config.n_outputs,
            config.target_mean,
            config.target_std,
            config.target_transform,
        )

    def scale(self, labels: np.ndarray) -> np.ndarray:
        """Labels as the network trains on them (regression: transformed, standardized)."""
        if self.kind != "regression":
            return labels
        values = transformed(np.asarray(labels, dtype=np.float64), self.transform)
        return (values - self.target_mean) / self.target_std

    def unscale(self, values: np.ndarray) -> np.ndarray:
        """`scale` undone, in float64: the label's own units."""
        if self.kind != "regression":
            return values
        raw = np.asarray(values, dtype=np.float64) * self.target_std + self.target_mean
        return np.expm1(raw) if self.transform == "log1p" else raw

    @property
    def output_scale(self) -> float:
        """The size of the served value the export parity check measures differences in
        (`maas.serving.inference.output_difference`): the label's standard deviation, or
        with `log1p` the value one standard deviation above the mean, in the label's units;
        1 for probabilities."""
        if self.kind != "regression":
            return 1.0
        if self.transform == "log1p":
            return float(np.expm1(self.target_mean + self.target_std))
        return self.target_std


def transformed(values: np.ndarray, transform: str) -> np.ndarray:
    """The label as the network learns it: as is, or log(1 + label) (label > -1)."""
    if transform != "log1p":
        return values
    if values.size and float(np.nanmin(values)) <= -1:
        raise TrainingError(
            f"label.transform log1p needs labels above -1; the smallest is "
            f"{float(np.nanmin(values)):g}: remove label.transform from the task file"
        )
    return np.log1p(values)


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
            return rtdl.PiecewiseLinearEmbeddings(
                bins, config.d_embedding, activation=False, version="B"
            )
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
        layers.append(nn.Linear(width, config.n_outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.numeric_embedding is not None:
            numeric = self.numeric_embedding(numeric).flatten(1)
        parts.append(numeric)
        out = self.mlp(torch.cat(parts, dim=1))
        return out.squeeze(1) if self.config.n_outputs == 1 else out


class TabMNet(nn.Module):
    """TabM over [numeric (or its embeddings), one-hot categorical codes], as `tabm.TabM`
    builds it (its defaults and initialization).

    Training returns the k members' outputs (batch, k[, classes]): each member is fitted on
    its own, the TabM recipe. In eval mode it returns one model's output: the logit of the
    members' mean probability (binary), the log of their mean class probabilities
    (multiclass), their mean value (regression), so everything downstream (`ServingNet`,
    metrics, the ONNX graph) sees one model.
    The forward runs TabM's parts itself: `TabM.forward` reads the batch size as a Python int,
    which would fix the exported graph's batch axis."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import tabm

        self.config = config
        self.tabm = tabm.TabM.make(
            n_num_features=config.numeric_dim,
            cat_cardinalities=list(config.cardinalities),
            num_embeddings=numeric_embedding(config),
            d_out=config.n_outputs,
            k=config.k,
            n_blocks=config.n_blocks,
            d_block=config.d_block,
            dropout=config.dropout,
        )

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        model: Any = self.tabm
        if model.num_module is not None:
            numeric = model.num_module(numeric)
        parts = [numeric.flatten(1)]
        parts += [
            nn.functional.one_hot(categorical[:, i], card).to(parts[0].dtype)
            for i, card in enumerate(self.config.cardinalities)
        ]
        out = model.output(model.backbone(model.ensemble_view(torch.cat(parts, dim=1))))
        if self.config.n_outputs == 1:
            out = out.squeeze(-1)  # (batch, k)
        if self.training:
            return out
        if self.config.head == "multiclass":
            return torch.log(torch.softmax(out.float(), dim=-1).mean(dim=1).clamp_min(1e-12))
        if self.config.head == "regression":
            return out.float().mean(dim=1)
        return torch.logit(torch.sigmoid(out.float()).mean(dim=1), eps=1e-7)


def serving_output(config: ModelConfig, out: torch.Tensor) -> torch.Tensor:
    """The network's eval output as the service returns it: the positive class's probability
    (binary), each class's probability after the decision rule's offsets (multiclass), the
    value in the label's units (regression: the label's transform undone)."""
    if config.head == "multiclass":
        logits = out.float()
        if config.class_bias:
            logits = logits + torch.tensor(config.class_bias, dtype=torch.float32)
        return torch.softmax(logits, dim=-1)
    if config.head == "regression":
        value = out.float() * config.target_std + config.target_mean
        return torch.expm1(value) if config.target_transform == "log1p" else value
    return torch.sigmoid(out.float())


class ServingNet(nn.Module):
    """The exported serving graph: the network followed by `serving_output`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.config: ModelConfig = net.config  # type: ignore[assignment]

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return serving_output(self.config, self.net(categorical, numeric))
