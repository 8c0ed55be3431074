"""Sphere-grid back end of the Gaunt product: separable synthesis, pointwise product, projection.

Grid (``so3.grid``): Gauss-Legendre in ``cos(theta)`` x uniform in phi, exact to polynomial degree
``D = sum of input degrees + lmax_out``. With ``M = 2L+1`` orders, ``n_t`` theta nodes, ``n_p``
azimuths and ``N`` vectors (batch x channels), one synthesis is

    xp [M, L+1, N] --bmm theta [M, n_t, L+1]--> g [M, n_t, N] --mm phi^T [n_p, M]--> f [n_p, n_t, N]

i.e. O(L^3 N) multiply-adds in two dense matrix products (no FFT: at these sizes a real DFT
matrix product is faster than an FFT call); the projection is the weighted transpose.
"""

from __future__ import annotations

import torch

from equiscale.ops._gaunt_common import gather_padded, rows_first, rows_last
from equiscale.ops._tables import TableModule
from equiscale.so3.grid import grid_analysis_tables, grid_synthesis_tables, padded_sh_index


class GridSynthesis(TableModule):
    """``[..., (L+1)^2, C]`` -> grid values ``[n_phi, n_theta, ..., C]`` (exact to ``degree``)."""

    theta: torch.Tensor
    phi_t: torch.Tensor
    index: torch.Tensor

    def __init__(self, lmax: int, degree: int) -> None:
        super().__init__()
        self.lmax = lmax
        theta, phi = grid_synthesis_tables(lmax, degree)  # [M, n_t, L+1], [M, n_p]
        self.register_table("theta", theta)
        self.register_table("phi_t", phi.T.contiguous())  # [n_p, M]
        self.register_buffer("index", padded_sh_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_device(x)
        flat, rest = rows_first(x)  # [K, N]
        m, n_t, lp = self.theta.shape
        xp = gather_padded(flat, self.index, m, lp)  # [M, L+1, N]
        g = torch.bmm(self.theta.to(x.dtype), xp)  # [M, n_t, N]
        f = self.phi_t.to(x.dtype) @ g.reshape(m, -1)  # [n_p, n_t * N]
        return f.view(f.shape[0], n_t, *rest)  # [n_p, n_t, ..., C]


class GridAnalysis(TableModule):
    """Grid values ``[n_phi, n_theta, ..., C]`` -> coefficients ``[..., (L+1)^2, C]`` of the
    projection onto degrees ``<= lmax`` (exact for functions of degree ``<= degree - lmax``)."""

    theta: torch.Tensor
    phi_t: torch.Tensor
    slots: torch.Tensor

    def __init__(self, lmax: int, degree: int) -> None:
        super().__init__()
        self.lmax = lmax
        theta, phi = grid_analysis_tables(lmax, degree)  # [M, L+1, n_t], [n_p, M]
        self.register_table("theta", theta)
        self.register_table("phi_t", phi.T.contiguous())  # [M, n_p]
        index = padded_sh_index(lmax)
        slots = torch.empty((lmax + 1) ** 2, dtype=torch.long)
        keep = index < (lmax + 1) ** 2
        slots[index[keep]] = torch.arange(index.numel())[keep]
        self.register_buffer("slots", slots, persistent=False)  # row (l, m) -> padded slot

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_device(h, "h")
        n_p, n_t = h.shape[0], h.shape[1]
        rest = tuple(h.shape[2:])
        m, lp, _ = self.theta.shape
        b = self.phi_t.to(h.dtype) @ h.reshape(n_p, -1)  # [M, n_t * N]
        o = torch.bmm(self.theta.to(h.dtype), b.view(m, n_t, -1))  # [M, L+1, N]
        out = o.reshape(m * lp, -1).index_select(0, self.slots)  # [K, N]
        return rows_last(out, rest)
