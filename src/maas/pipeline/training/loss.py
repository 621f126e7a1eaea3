"""The task's training loss, per head: what `fit` minimizes and the budget's probe times."""

from __future__ import annotations

import torch
from torch import nn


def head_loss(
    head: str,
    out: torch.Tensor,
    labels: torch.Tensor,
    regression_loss: str = "mse",
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The task's loss: BCE on the logit (binary), cross-entropy on the class logits
    (multiclass, weighted by `class_weight`: maas.pipeline.training.imbalance), MSE or Huber on
    the standardized value (regression). An ensemble's output (tabm: a member axis after the
    batch) fits every member to the labels."""
    out = out.float()
    if head == "multiclass":
        targets = labels.long()
        if out.dim() == 3:  # (batch, k, classes)
            targets = targets[:, None].expand(out.shape[:2])
        weight = class_weight.to(out.device) if class_weight is not None else None
        return nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), targets.reshape(-1), weight=weight
        )
    if out.dim() == 2:  # (batch, k)
        labels = labels[:, None].expand_as(out)
    if head == "regression":
        if regression_loss == "huber":
            return nn.functional.huber_loss(out, labels)
        return nn.functional.mse_loss(out, labels)
    return nn.functional.binary_cross_entropy_with_logits(out, labels)
