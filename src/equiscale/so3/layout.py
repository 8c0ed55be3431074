"""Layout of spherical features ``[..., (L+1)^2, C]`` and conversion to e3nn's ``Irreps`` layout.

Rows are e3nn real spherical harmonics in e3nn order: ``l = 0..L``, and inside each degree
``m = -l..l``; row ``(l, m)`` sits at index ``l^2 + l + m``. Channels are the last axis.

e3nn's channel-major layout for ``C x 0e + C x 1o + ... + C x Le`` (``mul_ir``) flattens, per degree,
a ``[C, 2l+1]`` block: ``[..., sum_l C (2l+1)]``.

Check: ``sh_index(2, -2) == 4`` and ``sh_dim(3) == 16``.
"""

from __future__ import annotations

import functools

import torch

__all__ = [
    "sh_dim",
    "sh_index",
    "sh_degrees",
    "sh_orders",
    "sh_irreps",
    "to_e3nn",
    "from_e3nn",
    "lmax_from_dim",
]


def _check_lmax(lmax: int, name: str = "lmax") -> None:
    if not isinstance(lmax, int) or isinstance(lmax, bool) or lmax < 0:
        raise ValueError(f"{name} must be a non-negative int, got {lmax!r}")


def sh_dim(lmax: int) -> int:
    """Number of rows ``(lmax+1)^2`` of a feature with degrees ``0..lmax``.

    >>> sh_dim(2)
    9
    """
    _check_lmax(lmax)
    return (lmax + 1) ** 2


def lmax_from_dim(dim: int, name: str = "dim") -> int:
    """Inverse of :func:`sh_dim`; a size that is not a square raises ValueError."""
    lmax = int(round(dim**0.5)) - 1
    if lmax < 0 or (lmax + 1) ** 2 != dim:
        raise ValueError(f"{name} must be (L+1)^2 for some L >= 0, got {dim}")
    return lmax


def sh_index(l: int, m: int) -> int:
    """Row of ``(l, m)``: ``l^2 + l + m``.

    >>> [sh_index(1, m) for m in (-1, 0, 1)], sh_index(2, -2)
    ([1, 2, 3], 4)
    """
    if not (0 <= l and -l <= m <= l):
        raise ValueError(f"need l >= 0 and -l <= m <= l, got l={l}, m={m}")
    return l * l + l + m


@functools.cache
def _degrees_orders(lmax: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ls = tuple(l for l in range(lmax + 1) for _ in range(2 * l + 1))
    ms = tuple(m for l in range(lmax + 1) for m in range(-l, l + 1))
    return ls, ms


def sh_degrees(lmax: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Degree ``l`` of every row: int64 ``[(lmax+1)^2]``."""
    _check_lmax(lmax)
    return torch.tensor(_degrees_orders(lmax)[0], dtype=torch.long, device=device)


def sh_orders(lmax: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Order ``m`` of every row: int64 ``[(lmax+1)^2]``."""
    _check_lmax(lmax)
    return torch.tensor(_degrees_orders(lmax)[1], dtype=torch.long, device=device)


def sh_irreps(lmax: int, channels: int, parity: str = "sh"):
    """e3nn ``Irreps`` ``C x 0e + C x 1o + ...`` (``parity="sh"``: p = (-1)^l) or the pseudo
    version ``C x 0o + C x 1e + ...`` (``parity="pseudo"``)."""
    from e3nn import o3

    _check_lmax(lmax)
    if parity not in ("sh", "pseudo"):
        raise ValueError(f"parity must be 'sh' or 'pseudo', got {parity!r}")
    sign = 1 if parity == "sh" else -1
    return o3.Irreps([(channels, (l, sign * (-1) ** l)) for l in range(lmax + 1)])


def to_e3nn(x: torch.Tensor) -> torch.Tensor:
    """``[..., (L+1)^2, C]`` -> e3nn channel-major ``[..., sum_l C (2l+1)]`` (``sh_irreps(L, C)``)."""
    if x.dim() < 2:
        raise ValueError(f"x must be [..., (L+1)^2, C], got shape {tuple(x.shape)}")
    lmax = lmax_from_dim(x.shape[-2], "x.shape[-2]")
    blocks = []
    for l in range(lmax + 1):
        block = x[..., l * l : (l + 1) ** 2, :]  # [..., 2l+1, C]
        blocks.append(block.transpose(-1, -2).reshape(*x.shape[:-2], -1))  # [..., C*(2l+1)]
    return torch.cat(blocks, dim=-1)


def from_e3nn(x: torch.Tensor, lmax: int, channels: int) -> torch.Tensor:
    """Inverse of :func:`to_e3nn`: ``[..., sum_l C (2l+1)]`` -> ``[..., (L+1)^2, C]``."""
    _check_lmax(lmax)
    expected = channels * (lmax + 1) ** 2
    if x.shape[-1] != expected:
        raise ValueError(f"x.shape[-1] must be channels * (lmax+1)^2 = {expected}, got {x.shape[-1]}")
    blocks, start = [], 0
    for l in range(lmax + 1):
        size = channels * (2 * l + 1)
        block = x[..., start : start + size].reshape(*x.shape[:-1], channels, 2 * l + 1)
        blocks.append(block.transpose(-1, -2))  # [..., 2l+1, C]
        start += size
    return torch.cat(blocks, dim=-2)
