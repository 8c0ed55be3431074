"""e3nn's real spherical harmonics, to any degree, as separable functions of (theta, phi).

e3nn (``normalization="integral"``, orthonormal on the unit sphere) uses y as the polar axis:
with ``t = cos(theta) = y`` and ``phi = atan2(x, z)``,

    Y_{l,0}  = Pbar_l^0(t)
    Y_{l,m}  = sqrt(2) Pbar_l^m(t) cos(m phi)        (m > 0)
    Y_{l,-m} = sqrt(2) Pbar_l^m(t) sin(m phi)        (m > 0)

with Pbar_l^m = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m, the associated Legendre function without
the Condon-Shortley phase. (Checked against ``e3nn.o3.spherical_harmonics`` for l <= 12, every row
with sign +1, in tests/test_so3_tables.py; e3nn stops at l = 12, this module does not.)

``Pbar_l^m(theta) = poly_{l-m}(cos theta) * sin(theta)^m`` is also a trigonometric polynomial of
degree l in theta, which the 2D Fourier basis (``so3.fourier``) relies on; ``legendre_table`` takes
``sin(theta)`` as its own argument so that it can be evaluated on the whole torus.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["legendre_table", "real_spherical_harmonics", "phi_table"]


def legendre_table(lmax: int, cos_theta: np.ndarray, sin_theta: np.ndarray) -> np.ndarray:
    """Normalised associated Legendre functions ``Pbar_l^m`` (float64), shape ``[..., L+1 (l), L+1 (m)]``.

    Stable three-term recursion in float64; ``sin_theta`` may be negative (torus extension).
    Entries with ``m > l`` are zero.
    """
    t = np.asarray(cos_theta, dtype=np.float64)
    s = np.asarray(sin_theta, dtype=np.float64)
    p = np.zeros(t.shape + (lmax + 1, lmax + 1))
    p[..., 0, 0] = math.sqrt(1.0 / (4.0 * math.pi))
    for m in range(1, lmax + 1):
        p[..., m, m] = math.sqrt((2 * m + 1) / (2 * m)) * s * p[..., m - 1, m - 1]
    for m in range(lmax):
        p[..., m + 1, m] = math.sqrt(2 * m + 3) * t * p[..., m, m]
    for m in range(lmax + 1):
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            p[..., l, m] = a * (t * p[..., l - 1, m] - b * p[..., l - 2, m])
    return p


def phi_table(lmax: int, phi: np.ndarray) -> np.ndarray:
    """Azimuthal factors ``[2L+1 (m = -L..L), ...]``: ``1`` (m=0), ``sqrt(2) cos(m phi)`` (m>0),
    ``sqrt(2) sin(|m| phi)`` (m<0)."""
    phi = np.asarray(phi, dtype=np.float64)
    rows = []
    for m in range(-lmax, lmax + 1):
        if m == 0:
            rows.append(np.ones_like(phi))
        elif m > 0:
            rows.append(math.sqrt(2.0) * np.cos(m * phi))
        else:
            rows.append(math.sqrt(2.0) * np.sin(-m * phi))
    return np.stack(rows, axis=0)


def real_spherical_harmonics(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    """e3nn's real SH (``normalize=True, normalization="integral"``) of ``vectors [..., 3]``,
    computed in float64 numpy for any ``lmax``: ``[..., (lmax+1)^2]`` in the dtype of ``vectors``.

    Not differentiable (a table builder); use ``e3nn.o3.spherical_harmonics`` inside models.
    """
    if not isinstance(lmax, int) or isinstance(lmax, bool) or lmax < 0:
        raise ValueError(f"lmax must be a non-negative int, got {lmax!r}")
    if vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have shape [..., 3], got {tuple(vectors.shape)}")
    v = vectors.detach().to("cpu", torch.float64).numpy()
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    p = legendre_table(lmax, y, np.sqrt(np.clip(x * x + z * z, 0.0, None)))
    f = phi_table(lmax, np.arctan2(x, z))  # [2L+1, ...]
    cols = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            cols.append(p[..., l, abs(m)] * f[m + lmax])
    out = np.stack(cols, axis=-1)
    return torch.from_numpy(out).to(device=vectors.device, dtype=vectors.dtype)
