"""Training batches made to look like the requests the API accepts but the data rarely holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from maas.serving.preprocessing import UNKNOWN_INDEX


@dataclass(frozen=True)
class Augmentation:
    """Training batches made to look like requests the API accepts but the data rarely holds,
    so those requests are trained for: the optional inputs left out (a random `optional_rate`
    of rows; `optional_scaled`/`optional_indicators` are their numeric-matrix columns), and
    categorical values the model does not know (a random `unknown_rate` of them, which trains
    the unknown bucket every vocabulary has)."""

    optional_scaled: list[int] = field(default_factory=list)
    optional_indicators: list[int] = field(default_factory=list)
    optional_rate: float = 0.0
    unknown_rate: float = 0.0

    def leave_out(self, numeric: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A copy of a batch's numeric matrix with the optional inputs absent in a random
        `optional_rate` of its rows (0 as value, 1 as missing indicator: what serving sees)."""
        if not self.optional_scaled or self.optional_rate <= 0:
            return numeric
        draw = torch.rand(numeric.shape[0], generator=generator) < self.optional_rate
        rows = draw.nonzero().to(numeric.device)
        out = numeric.clone()
        out[rows, torch.tensor(self.optional_scaled, device=numeric.device)] = 0.0
        out[rows, torch.tensor(self.optional_indicators, device=numeric.device)] = 1.0
        return out

    def mask_categories(
        self, categorical: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """A copy of a batch's category codes with a random `unknown_rate` of them set to the
        unknown bucket (what serving does with a value it has not seen)."""
        if self.unknown_rate <= 0 or categorical.numel() == 0:
            return categorical
        draw = torch.rand(categorical.shape, generator=generator) < self.unknown_rate
        return categorical.masked_fill(draw.to(categorical.device), UNKNOWN_INDEX)

    def apply(
        self, categorical: torch.Tensor, numeric: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mask_categories(categorical, generator), self.leave_out(numeric, generator)
