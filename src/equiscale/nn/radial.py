"""Radial features of an edge length: Gaussian or Bessel basis and a smooth cutoff envelope.

    rbf_k(r) = exp(-((r - mu_k) / sigma)^2),  mu_k = k * cutoff / (K - 1),  sigma = cutoff / (K - 1)
    bessel_n(r) = sqrt(2 / cutoff) sin(n pi r / cutoff) / r,  n = 1..K   (DimeNet, MACE; n pi / cutoff
                  times sqrt(2 / cutoff) at r = 0)
    envelope(r) = 1 - 10 x^3 + 15 x^4 - 6 x^5  for x = r / cutoff < 1, else 0

The envelope is twice continuously differentiable and vanishes with its first two derivatives at
the cutoff, so energies built from it are smooth when atoms cross the cutoff (MD conserves energy).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from equiscale.ops._tables import TableModule

__all__ = ["GaussianBasis", "BesselBasis", "radial_basis", "smooth_envelope"]


def smooth_envelope(r: Tensor, cutoff: float) -> Tensor:
    """C2 polynomial envelope: 1 at r = 0, 0 with zero first and second derivatives at cutoff."""
    x = (r / cutoff).clamp(max=1.0)
    return torch.where(r < cutoff, 1 - 10 * x**3 + 15 * x**4 - 6 * x**5, torch.zeros_like(r))


class GaussianBasis(nn.Module):
    """``r [...] -> [..., num_basis]`` Gaussians on [0, cutoff] (fixed centres and width)."""

    centres: Tensor

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        if num_basis < 2 or cutoff <= 0:
            raise ValueError(f"need num_basis >= 2 and cutoff > 0, got {num_basis}, {cutoff}")
        self.register_buffer("centres", torch.linspace(0.0, cutoff, num_basis), persistent=False)
        self.width = cutoff / (num_basis - 1)

    def forward(self, r: Tensor) -> Tensor:
        return torch.exp(-(((r[..., None] - self.centres.to(r.dtype)) / self.width) ** 2))


class BesselBasis(TableModule):
    """``r [...] -> [..., num_basis]`` spherical Bessel functions of order 0 vanishing at ``cutoff``
    (fixed frequencies n pi / cutoff); finite with all derivatives at r = 0."""

    freqs: Tensor

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        if num_basis < 1 or cutoff <= 0:
            raise ValueError(f"need num_basis >= 1 and cutoff > 0, got {num_basis}, {cutoff}")
        freqs = torch.arange(1, num_basis + 1, dtype=torch.float64) * math.pi / cutoff
        self.register_table("freqs", freqs)
        self.prefactor = math.sqrt(2.0 / cutoff)

    def forward(self, r: Tensor) -> Tensor:
        w = self.freqs.to(r.dtype)
        x = r[..., None] * w  # [..., K]
        small = x.abs() < 1e-4
        safe = torch.where(small, torch.ones_like(x), x)
        sinc = torch.where(small, 1 - x * x / 6, torch.sin(safe) / safe)  # sin(x)/x, smooth at 0
        return self.prefactor * w * sinc


def radial_basis(kind: str, num_basis: int, cutoff: float) -> nn.Module:
    """``"gaussian"`` (:class:`GaussianBasis`) or ``"bessel"`` (:class:`BesselBasis`)."""
    if kind == "gaussian":
        return GaussianBasis(num_basis, cutoff)
    if kind == "bessel":
        return BesselBasis(num_basis, cutoff)
    raise ValueError(f"radial_basis must be 'gaussian' or 'bessel', got {kind!r}")
