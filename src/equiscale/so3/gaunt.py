"""Exact real Gaunt coefficients for e3nn's real spherical harmonics (``normalization="integral"``).

    G[(l1 m1), (l2 m2), (l3 m3)] = int_{S^2} Y_{l1 m1} Y_{l2 m2} Y_{l3 m3} dOmega

so that the band-limited product of ``f = sum x_{l1 m1} Y_{l1 m1}`` and ``g = sum y_{l2 m2} Y_{l2 m2}``
has coefficients ``(f g)_{l3 m3} = sum G x y``. Facts (tested):

- G vanishes unless ``|l1 - l2| <= l3 <= l1 + l2`` and ``l1 + l2 + l3`` is even (parity), so the
  product is symmetric and has no antisymmetric path (no cross product ``1o x 1o -> 1e``);
- on each path ``G = c(l1, l2, l3) * wigner_3j(l1, l2, l3)`` (e3nn's real 3j, unit Frobenius norm) with
  ``|c| = sqrt((2l1+1)(2l2+1)(2l3+1) / (4 pi)) |(l1 l2 l3; 0 0 0)|``.

Built in float64 from the separable quadrature of ``so3.grid`` (exact: the integrand is a
polynomial of degree ``l1 + l2 + l3``), only for entries allowed by the selection rules; cached.

Check: ``G[(0 0), (l m), (l m)] = 1 / sqrt(4 pi)`` for every (l, m).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from equiscale.so3.spherical_harmonics import legendre_table, phi_table

__all__ = ["gaunt_coefficients", "gaunt_coefficients_sparse"]


def _check_lmax(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


@functools.cache
def _gaunt_sparse(l1max: int, l2max: int, l3max: int) -> tuple[np.ndarray, np.ndarray]:
    lmax = max(l1max, l2max, l3max)
    degree = l1max + l2max + l3max
    t, w = np.polynomial.legendre.leggauss(degree // 2 + 1)
    p = legendre_table(lmax, t, np.sqrt(1.0 - t * t))  # [j, l, |m|]
    n_phi = degree + 1
    phi = 2.0 * math.pi * np.arange(n_phi) / n_phi
    f = phi_table(lmax, phi)  # [m, k]
    azim = np.einsum("ak,bk,ck->abc", f, f, f) * (2.0 * math.pi / n_phi)  # [m1, m2, m3]

    def degrees_orders(L: int) -> tuple[np.ndarray, np.ndarray]:
        ls = np.array([l for l in range(L + 1) for _ in range(2 * l + 1)])
        ms = np.array([m for l in range(L + 1) for m in range(-l, l + 1)])
        return ls, ms

    l1, m1 = degrees_orders(l1max)
    l2, m2 = degrees_orders(l2max)
    i1, i2 = (g.ravel() for g in np.meshgrid(np.arange(len(l1)), np.arange(len(l2)), indexing="ij"))
    a1, a2 = np.abs(m1[i1]), np.abs(m2[i2])
    negative = (m1[i1] < 0) ^ (m2[i2] < 0)  # cos*sin -> sin; cos*cos, sin*sin -> cos
    out_i1, out_i2, out_i3 = [], [], []
    for mabs, keep in ((a1 + a2, np.ones_like(a1, dtype=bool)), (np.abs(a1 - a2), a1 * a2 != 0)):
        m3 = np.where(negative, -mabs, mabs)
        keep = keep & ~(negative & (mabs == 0))
        for l3 in range(l3max + 1):
            ok = (
                keep
                & (np.abs(m3) <= l3)
                & ((l1[i1] + l2[i2] + l3) % 2 == 0)
                & (np.abs(l1[i1] - l2[i2]) <= l3)
                & (l3 <= l1[i1] + l2[i2])
            )
            out_i1.append(i1[ok])
            out_i2.append(i2[ok])
            out_i3.append(l3 * l3 + l3 + m3[ok])
    i1 = np.concatenate(out_i1)
    i2 = np.concatenate(out_i2)
    i3 = np.concatenate(out_i3)
    l1s, m1s, l2s, m2s = l1[i1], m1[i1], l2[i2], m2[i2]
    l3s = np.floor(np.sqrt(i3)).astype(np.int64)
    m3s = i3 - l3s * l3s - l3s
    radial = np.einsum(
        "j,nj->n",
        w,
        p[:, l1s, np.abs(m1s)].T * p[:, l2s, np.abs(m2s)].T * p[:, l3s, np.abs(m3s)].T,
    )
    values = radial * azim[m1s + lmax, m2s + lmax, m3s + lmax]
    nonzero = np.abs(values) > 1e-13
    index = np.stack([i1[nonzero], i2[nonzero], i3[nonzero]])
    order = np.lexsort(index[::-1])
    return index[:, order], values[nonzero][order]


def gaunt_coefficients_sparse(
    lmax_in1: int, lmax_in2: int, lmax_out: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nonzero Gaunt coefficients: ``index`` int64 ``[3, nnz]`` (rows of x, y, out) and ``values``
    float64 ``[nnz]``, sorted by (row x, row y, row out). Copies of a cached table."""
    _check_lmax(lmax_in1, "lmax_in1")
    _check_lmax(lmax_in2, "lmax_in2")
    _check_lmax(lmax_out, "lmax_out")
    index, values = _gaunt_sparse(lmax_in1, lmax_in2, lmax_out)
    return torch.from_numpy(index.copy()), torch.from_numpy(values.copy())


def gaunt_coefficients(lmax_in1: int, lmax_in2: int, lmax_out: int) -> torch.Tensor:
    """Dense float64 Gaunt table ``[(L1+1)^2, (L2+1)^2, (Lout+1)^2]`` (a fresh tensor)."""
    index, values = gaunt_coefficients_sparse(lmax_in1, lmax_in2, lmax_out)
    dense = torch.zeros((lmax_in1 + 1) ** 2, (lmax_in2 + 1) ** 2, (lmax_out + 1) ** 2, dtype=torch.float64)
    dense[index[0], index[1], index[2]] = values
    return dense
