"""Solid harmonics R^l(r) = |r|^l Y^l(r_hat) and their addition theorem.

R^l is e3nn's real spherical harmonic evaluated without normalising the argument
(``e3nn.o3.spherical_harmonics(l, r, normalize=False)``): a homogeneous polynomial of degree l, so
R^l(x + y) is a finite sum of products of lower-degree solid harmonics of x and y:

    R^l(x + y) = sum_{b=0..l} k(l, b) [R^b(x) (x) R^(l-b)(y)]^l,
    k(l, b) = sqrt(binom(2l, 2b)) * n_l / (n_b n_(l-b)),

with unitary Clebsch-Gordan coupling ``[u (x) v]^l = sqrt(2l+1) * e3nn.o3.wigner_3j(b, l-b, l)`` and
n_l the e3nn normalisation constant: n_l = 1 ("norm", |Y^l| = 1 on the sphere), sqrt(2l+1)
("component"), sqrt((2l+1)/(4 pi)) ("integral"). In the "norm" (Racah) normalisation k(l, b) is
the textbook sqrt(binom(2l, 2b)). Checked numerically in tests/test_wigner6j_conv.py.

Check: k(2, 1) = sqrt(6) in the "norm" normalisation.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3

__all__ = ["solid_harmonics", "sh_normalization_constant", "addition_coefficient"]

_NORMALIZATIONS = ("component", "integral", "norm")


def _check_normalization(normalization: str) -> None:
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")


def sh_normalization_constant(l: int, normalization: str = "component") -> float:
    """n_l with Y^l_(normalization) = n_l * Y^l_("norm") (e3nn's real spherical harmonics)."""
    _check_normalization(normalization)
    if normalization == "norm":
        return 1.0
    if normalization == "component":
        return math.sqrt(2 * l + 1)
    return math.sqrt((2 * l + 1) / (4 * math.pi))


def addition_coefficient(l: int, b: int, normalization: str = "component") -> float:
    """k(l, b) in R^l(x + y) = sum_b k(l, b) [R^b(x) (x) R^(l-b)(y)]^l (module docstring)."""
    if not 0 <= b <= l:
        raise ValueError(f"b must satisfy 0 <= b <= l = {l}, got {b}")
    n = lambda k: sh_normalization_constant(k, normalization)
    return math.sqrt(math.comb(2 * l, 2 * b)) * n(l) / (n(b) * n(l - b))


def solid_harmonics(lmax: int, r: torch.Tensor, normalization: str = "component") -> torch.Tensor:
    """R^l(r) for l = 0..lmax: ``[..., 3] -> [..., (lmax+1)^2]`` (e3nn order, unnormalised input)."""
    _check_normalization(normalization)
    if not isinstance(lmax, int) or isinstance(lmax, bool) or lmax < 0:
        raise ValueError(f"lmax must be a non-negative int, got {lmax!r}")
    if r.shape[-1] != 3:
        raise ValueError(f"r must have shape [..., 3], got {tuple(r.shape)}")
    if r.numel() == 0:
        return r.new_zeros(*r.shape[:-1], (lmax + 1) ** 2)
    return o3.spherical_harmonics(list(range(lmax + 1)), r, normalize=False, normalization=normalization)
