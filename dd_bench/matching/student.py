"""A network as a function of one flat parameter vector, for unrolled students and buffers."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


class FlatModel:
    """``model`` evaluated at a flat parameter vector, without re-instantiating modules.

    Parameters are views into the vector (``split`` + ``view``), so autograd flows back into
    the vector; buffers (e.g. BatchNorm statistics) stay the module's own.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        named = list(model.named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.num_params = sum(self.sizes)

    def flatten(self, module: nn.Module | None = None) -> torch.Tensor:
        """A copy (never a view) of the module's current parameters as one vector."""
        params = (module or self.model).parameters()
        return torch.cat([p.detach().reshape(-1) for p in params]).clone()

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if flat.numel() != self.num_params:
            raise ValueError(f"flat parameter vector has {flat.numel()} values; the model has {self.num_params}")
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.sizes), self.shapes)}

    def load(self, flat: torch.Tensor) -> None:
        """Copy a flat vector into the module's parameters."""
        with torch.no_grad():
            for p, value in zip(self.model.parameters(), flat.split(self.sizes)):
                p.copy_(value.view_as(p))

    def __call__(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.unflatten(flat), (x,))
