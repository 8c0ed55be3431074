"""Shared plumbing of the Gaunt back ends: ``[..., K, C]`` <-> ``[K, ...]`` moves and padded gathers."""

from __future__ import annotations

import math

import torch


def rows_first(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[..., K, C]`` -> ``([K, N], (..., C))`` with ``N = prod(...) * C`` (one copy)."""
    rest = tuple(x.shape[:-2]) + (x.shape[-1],)
    flat = x.movedim(-2, 0).reshape(x.shape[-2], math.prod(rest))  # [K, N]
    return flat, rest


def rows_last(flat: torch.Tensor, rest: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`rows_first`: ``[K, N]`` -> ``[..., K, C]`` (contiguous)."""
    return flat.reshape(flat.shape[0], *rest).movedim(0, -2).contiguous()


def gather_padded(flat: torch.Tensor, index: torch.Tensor, m: int, lp: int) -> torch.Tensor:
    """``[K, N]`` -> padded ``[2L+1 (m), L+1 (l), N]`` (zero where ``l < |m|``)."""
    padded = torch.cat([flat, flat.new_zeros(1, flat.shape[1])], dim=0)  # [K+1, N]
    return padded.index_select(0, index).view(m, lp, flat.shape[1])
