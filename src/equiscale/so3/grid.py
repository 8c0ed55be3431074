"""Sphere grids and the separable SH <-> grid transform tables.

Grid: Gauss-Legendre nodes ``t_j = cos(theta_j)`` (``n_theta`` of them) times ``n_phi`` uniform
azimuths ``phi_k = 2 pi k / n_phi``. With ``n_theta = floor(D/2) + 1`` and ``n_phi = D + 1`` the rule

    int_{S^2} f dOmega = sum_{j,k} w_j (2 pi / n_phi) f(theta_j, phi_k)

is exact for every polynomial ``f`` of degree ``<= D`` on the sphere (Gauss-Legendre is exact to
degree ``2 n_theta - 1`` in t; the uniform rule to trigonometric degree ``n_phi - 1`` in phi).

Separable synthesis of ``f = sum_{lm} x_{lm} Y_{lm}`` (``so3.spherical_harmonics``):

    g[m, j] = sum_l Pbar_l^{|m|}(t_j) x_{lm}          (Legendre step, O(L^3) per grid)
    f[j, k] = sum_m g[m, j] Phi_m(phi_k)               (azimuthal step, a real DFT)

and analysis (projection) is the transpose with the quadrature weights. Features are gathered into a
padded ``[2L+1 (m = -L..L), L+1 (l)]`` array with :func:`padded_sh_index` so that both steps are
plain batched matrix products.

Check: ``sphere_quadrature(4)`` has 3 x 5 points and integrates ``y^4`` to ``4 pi / 5``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from equiscale.so3.spherical_harmonics import legendre_table, phi_table

__all__ = [
    "sphere_quadrature",
    "padded_sh_index",
    "grid_synthesis_tables",
    "grid_analysis_tables",
    "sphere_grid_points",
]


def _check_int(value: int, name: str, low: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@functools.cache
def _quadrature(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_theta = degree // 2 + 1
    n_phi = degree + 1
    t, w = np.polynomial.legendre.leggauss(n_theta)
    phi = 2.0 * math.pi * np.arange(n_phi) / n_phi
    return t, w, phi


def sphere_quadrature(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos_theta [n_theta], weights [n_theta], phi [n_phi])`` (float64 copies), exact to ``degree``.

    Point weights are ``weights[j] * 2 pi / n_phi`` (they sum to ``4 pi``).
    """
    _check_int(degree, "degree")
    t, w, phi = _quadrature(degree)
    return t.copy(), w.copy(), phi.copy()


def sphere_grid_points(degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors ``[n_theta, n_phi, 3]`` (x, y, z; y polar, ``phi = atan2(x, z)``) and point
    weights ``[n_theta, n_phi]`` of :func:`sphere_quadrature` (float64)."""
    t, w, phi = sphere_quadrature(degree)
    s = np.sqrt(1.0 - t * t)
    x = s[:, None] * np.sin(phi)[None, :]
    z = s[:, None] * np.cos(phi)[None, :]
    y = np.broadcast_to(t[:, None], x.shape)
    points = np.stack([x, y, z], axis=-1)
    weights = w[:, None] * np.full(phi.shape, 2.0 * math.pi / len(phi))[None, :]
    return torch.from_numpy(points.copy()), torch.from_numpy(weights.copy())


@functools.cache
def _padded_sh_index(lmax: int) -> np.ndarray:
    pad = (lmax + 1) ** 2
    index = np.full((2 * lmax + 1, lmax + 1), pad, dtype=np.int64)
    for m in range(-lmax, lmax + 1):
        for l in range(abs(m), lmax + 1):
            index[m + lmax, l] = l * l + l + m
    return index.reshape(-1)


def padded_sh_index(lmax: int) -> torch.Tensor:
    """Row of ``(l, m)`` for every slot of the padded ``[2L+1 (m), L+1 (l)]`` array, flattened
    (int64 ``[(2L+1)(L+1)]``); slots with ``l < |m|`` point at row ``(L+1)^2`` (a zero pad row)."""
    _check_int(lmax, "lmax")
    return torch.from_numpy(_padded_sh_index(lmax).copy())


@functools.cache
def _synthesis(lmax: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    t, _, phi = _quadrature(degree)
    p = legendre_table(lmax, t, np.sqrt(1.0 - t * t))  # [n_theta, L+1 (l), L+1 (|m|)]
    theta = np.zeros((2 * lmax + 1, len(t), lmax + 1))  # [m, j, l]
    for m in range(-lmax, lmax + 1):
        theta[m + lmax] = p[:, :, abs(m)]
    return theta, phi_table(lmax, phi)  # [m, j, l], [m, k]


def grid_synthesis_tables(lmax: int, degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables to evaluate degree-``<= lmax`` features on the grid of :func:`sphere_quadrature`:
    ``theta [2L+1 (m), n_theta, L+1 (l)]`` = ``Pbar_l^|m|(t_j)`` (0 for ``l < |m|``) and
    ``phi [2L+1 (m), n_phi]`` = ``Phi_m(phi_k)``. float64 copies."""
    _check_int(lmax, "lmax")
    _check_int(degree, "degree")
    theta, phi = _synthesis(lmax, degree)
    return torch.from_numpy(theta.copy()), torch.from_numpy(phi.copy())


def grid_analysis_tables(lmax: int, degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Transpose of the synthesis with quadrature weights, for the projection
    ``x_{lm} = sum_{jk} w_j (2 pi / n_phi) Y_{lm}(theta_j, phi_k) f[j, k]``:
    ``theta [2L+1 (m), L+1 (l), n_theta]`` and ``phi [n_phi, 2L+1 (m)]``. float64 copies.
    Exact for band-limited ``f`` whenever ``degree >= lmax + (degree of f)``."""
    _check_int(lmax, "lmax")
    _check_int(degree, "degree")
    theta, phi = _synthesis(lmax, degree)
    _, w, phis = _quadrature(degree)
    theta_w = theta.transpose(0, 2, 1) * w[None, None, :]
    phi_w = phi.T * (2.0 * math.pi / len(phis))
    return torch.from_numpy(theta_w.copy()), torch.from_numpy(phi_w.copy())
