"""The change of basis between e3nn's real SH and the 2D Fourier basis ``e^{i(u theta + v phi)}``.

Extend ``Y_{lm}(theta, phi)`` from the sphere to the torus ``[0, 2 pi)^2`` by the same formula
(``so3.spherical_harmonics``: ``Pbar_l^|m|`` is a trigonometric polynomial of degree l in theta):

    Y_{lm}(theta, phi) = sum_{u=-l..l} sum_{v=+-m} c[lm, u, v] e^{i(u theta + v phi)}

with ``c = a[m, u, l] * b[m, v]``: ``a`` the theta-Fourier coefficients of ``Pbar_l^|m|`` and ``b``
those of ``Phi_m`` (nonzero only for ``v = +-m``, so the change of basis is sparse, O(L^3)).
Products of spherical functions are products of torus functions, i.e. 2D convolutions of their
Fourier coefficients (the Gaunt tensor product paper's algorithm).

Back to SH: for ``h = sum_{uv} z[u, v] e^{i(u theta + v phi)}``,

    (h)_{lm} = int_0^pi int_0^{2 pi} h Y_{lm} sin(theta) dphi dtheta
             = Re sum_{u,v} z[u, v] E[v, m] S[m, u, l]

with ``E[v, m] = int e^{i v phi} Phi_m dphi`` and ``S[m, u, l] = int_0^pi e^{i u theta}
Pbar_l^|m|(theta) sin(theta) dtheta``, both exact in closed form from ``a``, ``b`` and
``int_0^pi e^{i n theta} dtheta = pi (n = 0), 0 (n even), 2i/n (n odd)``.

Check: ``sh_to_fourier(0)`` is ``[[[1 / sqrt(4 pi)]]]``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from equiscale.so3.spherical_harmonics import legendre_table, phi_table

__all__ = [
    "theta_fourier",
    "phi_fourier",
    "sh_to_fourier",
    "theta_projection",
    "phi_projection",
]


def _check(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


@functools.cache
def _theta_fourier(lmax: int) -> np.ndarray:
    n = 2 * lmax + 1
    theta = 2.0 * math.pi * np.arange(n) / n
    p = legendre_table(lmax, np.cos(theta), np.sin(theta))  # [n, l, |m|]
    coeffs = np.fft.fft(p, axis=0) / n  # [n (u mod n), l, |m|]
    coeffs = np.roll(coeffs, lmax, axis=0)  # u = -L..L
    out = np.zeros((2 * lmax + 1, 2 * lmax + 1, lmax + 1), dtype=np.complex128)  # [m, u, l]
    for m in range(-lmax, lmax + 1):
        out[m + lmax] = coeffs[:, :, abs(m)]
        out[m + lmax, :, : abs(m)] = 0.0
    return out


def theta_fourier(lmax: int) -> torch.Tensor:
    """``a [2L+1 (m), 2L+1 (u = -L..L), L+1 (l)]`` complex128:
    ``Pbar_l^|m|(theta) = sum_u a[m, u, l] e^{i u theta}``."""
    _check(lmax, "lmax")
    return torch.from_numpy(_theta_fourier(lmax).copy())


@functools.cache
def _phi_fourier(lmax: int) -> np.ndarray:
    n = 2 * lmax + 1
    phi = 2.0 * math.pi * np.arange(n) / n
    coeffs = np.fft.fft(phi_table(lmax, phi), axis=1) / n  # [m, v mod n]
    coeffs = np.roll(coeffs, lmax, axis=1)
    coeffs[np.abs(coeffs) < 1e-14] = 0.0
    return coeffs


def phi_fourier(lmax: int) -> torch.Tensor:
    """``b [2L+1 (m), 2L+1 (v = -L..L)]`` complex128: ``Phi_m(phi) = sum_v b e^{i v phi}``; nonzero
    only at ``v = +-m``."""
    _check(lmax, "lmax")
    return torch.from_numpy(_phi_fourier(lmax).copy())


def sh_to_fourier(lmax: int) -> torch.Tensor:
    """Dense change of basis ``c [(L+1)^2, 2L+1 (u), 2L+1 (v)]`` complex128 (for tests and users;
    the operators use the separable factors)."""
    a, b = _theta_fourier(lmax), _phi_fourier(lmax)
    rows = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            rows.append(np.outer(a[m + lmax, :, l], b[m + lmax]))
    return torch.from_numpy(np.stack(rows))


def _half_circle_integral(n: np.ndarray) -> np.ndarray:
    """``int_0^pi e^{i n theta} dtheta`` for integer arrays ``n``."""
    n = np.asarray(n)
    out = np.zeros(n.shape, dtype=np.complex128)
    out[n == 0] = math.pi
    odd = n % 2 == 1
    out[odd] = 2j / n[odd]
    return out


@functools.cache
def _theta_projection(lmax: int, umax: int) -> np.ndarray:
    a = _theta_fourier(lmax)  # [m, u', l]
    u = np.arange(-umax, umax + 1)
    up = np.arange(-lmax, lmax + 1)
    k = u[:, None] + up[None, :]  # [u, u']
    # sin(theta) e^{i k theta} = (e^{i (k+1) theta} - e^{i (k-1) theta}) / (2i)
    j = (_half_circle_integral(k + 1) - _half_circle_integral(k - 1)) / 2j  # [u, u']
    return np.einsum("uv,mvl->mul", j, a)  # [m, u, l]


def theta_projection(lmax: int, umax: int) -> torch.Tensor:
    """``S [2L+1 (m), 2U+1 (u = -U..U), L+1 (l)]`` complex128:
    ``S[m, u, l] = int_0^pi e^{i u theta} Pbar_l^|m|(theta) sin(theta) dtheta``."""
    _check(lmax, "lmax")
    _check(umax, "umax")
    return torch.from_numpy(_theta_projection(lmax, umax).copy())


def phi_projection(lmax: int, vmax: int | None = None) -> torch.Tensor:
    """``E [2V+1 (v = -V..V), 2L+1 (m)]`` complex128: ``E[v, m] = int_0^{2 pi} e^{i v phi} Phi_m dphi``
    (``V = lmax`` by default; rows with ``|v| > lmax`` are zero)."""
    _check(lmax, "lmax")
    vmax = lmax if vmax is None else vmax
    _check(vmax, "vmax")
    b = _phi_fourier(lmax)  # [m, v'] ; int e^{i v phi} e^{i v' phi} = 2 pi [v' = -v]
    e = np.zeros((2 * vmax + 1, 2 * lmax + 1), dtype=np.complex128)
    for v in range(-vmax, vmax + 1):
        if abs(v) <= lmax:
            e[v + vmax] = 2.0 * math.pi * b[:, -v + lmax]
    return torch.from_numpy(e)
