"""Radial features of an edge length: Gaussian basis and a smooth cutoff envelope.

    rbf_k(r) = exp(-((r - mu_k) / sigma)^2),  mu_k = k * cutoff / (K - 1),  sigma = cutoff / (K - 1)
    envelope(r) = 1 - 10 x^3 + 15 x^4 - 6 x^5  for x = r / cutoff < 1, else 0

The envelope is twice continuously differentiable and vanishes with its first two derivatives at
the cutoff, so energies built from it are smooth when atoms cross the cutoff (MD conserves energy).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GaussianBasis", "smooth_envelope"]


def smooth_envelope(r: Tensor, cutoff: float) -> Tensor:
    """C2 polynomial envelope: 1 at r = 0, 0 with zero first and second derivatives at cutoff."""
    x = (r / cutoff).clamp(max=1.0)
    return torch.where(r < cutoff, 1 - 10 * x**3 + 15 * x**4 - 6 * x**5, torch.zeros_like(r))


class GaussianBasis(nn.Module):
    """``r [...] -> [..., num_basis]`` Gaussians on [0, cutoff] (fixed centres and width)."""

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        if num_basis < 2 or cutoff <= 0:
            raise ValueError(f"need num_basis >= 2 and cutoff > 0, got {num_basis}, {cutoff}")
        self.register_buffer("centres", torch.linspace(0.0, cutoff, num_basis), persistent=False)
        self.width = cutoff / (num_basis - 1)

    def forward(self, r: Tensor) -> Tensor:
        return torch.exp(-(((r[..., None] - self.centres.to(r.dtype)) / self.width) ** 2))
