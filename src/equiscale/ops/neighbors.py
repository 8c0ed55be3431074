"""Neighbour lists in O(N): cell lists (``vesin``), periodic boundary conditions, batched structures.

Convention (used by every convolution in equiscale): an edge ``e = (j -> i)`` is stored as
``edge_index[:, e] = (j, i)``, row 0 the *source* j, row 1 the *target* i. The source sits at its
periodic image ``pos[j] + shifts[e]`` with ``shifts[e] = cell_shifts[e] @ cell`` (integer lattice
offsets times the cell, rows = lattice vectors), and the edge vector is

    r_ij = pos[i] - pos[j] - shifts[e],   |r_ij| <= cutoff, (i, j, shift) != (i, i, 0).

Two distinct atoms at the same position are neighbours with r_ij = 0 (the convolutions treat such
an edge as direction-less: only its l = 0 part contributes, finite to every derivative).

The list is *full*: (j -> i) and (i -> j) both appear. Edges never cross structures of ``batch``.
Edges are sorted by target then source. Indices carry no gradient; ``shifts`` is differentiable
with respect to ``cell`` (for stress).

Each structure is handed to vesin's cell-list search (O(n) per structure for a fixed density), so
the whole batch costs O(N) plus a Python loop over structures.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["Neighbors", "neighbor_list", "edge_vectors"]


class Neighbors(NamedTuple):
    """edge_index [2, E] (source j, target i); shifts [E, 3] (Cartesian); cell_shifts [E, 3] int."""

    edge_index: Tensor
    shifts: Tensor
    cell_shifts: Tensor


def _structure_slices(batch: Tensor | None, n: int) -> list[tuple[int, int]]:
    if batch is None:
        return [(0, n)]
    if batch.shape != (n,):
        raise ValueError(f"batch must have shape [N={n}], got {tuple(batch.shape)}")
    if n == 0:
        return []
    b = batch.detach().cpu()
    if bool((b[1:] < b[:-1]).any()):
        raise ValueError("batch must be sorted (nodes of one structure contiguous)")
    counts = torch.bincount(b.long())
    ends = torch.cumsum(counts, 0).tolist()
    starts = [0] + ends[:-1]
    return list(zip(starts, ends))


def neighbor_list(
    pos: Tensor,
    cutoff: float,
    *,
    batch: Tensor | None = None,
    cell: Tensor | None = None,
    pbc: bool | Tensor | None = None,
) -> Neighbors:
    """All pairs closer than ``cutoff`` (module docstring for the conventions).

    Args:
        pos: [N, 3] positions.
        cutoff: radius (> 0), same unit as ``pos``.
        batch: [N] structure index per node, sorted; ``None`` = one structure.
        cell: [B, 3, 3] or [3, 3] lattice vectors as rows (needed where ``pbc`` is on).
        pbc: bool, [3] or [B, 3] periodicity; ``None`` = False.
    Returns:
        :class:`Neighbors` ``(edge_index [2, E] long, shifts [E, 3] dtype of pos,
        cell_shifts [E, 3] long)`` on the device of ``pos``.
    """
    if not isinstance(pos, Tensor) or not pos.is_floating_point():
        raise TypeError(
            f"pos must be a floating point torch.Tensor [N, 3], got "
            f"{pos.dtype if isinstance(pos, Tensor) else type(pos).__name__}"
        )
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape [N, 3], got {tuple(pos.shape)}")
    if not float(cutoff) > 0:
        raise ValueError(f"cutoff must be > 0, got {cutoff!r}")
    n = pos.shape[0]
    slices = _structure_slices(batch, n)
    n_struct = len(slices)
    periodic = _periodicity(pbc, n_struct)
    if cell is not None:
        cell = cell.to(pos.dtype)
        if cell.shape == (3, 3):
            cell = cell.expand(n_struct, 3, 3)
        if cell.shape != (n_struct, 3, 3):
            raise ValueError(f"cell must have shape [B={n_struct}, 3, 3] or [3, 3], got {tuple(cell.shape)}")
    elif periodic.any():
        raise ValueError("pbc is on but no cell was given")

    pos_np = pos.detach().cpu().numpy().astype(np.float64)
    cell_np = None if cell is None else cell.detach().cpu().numpy().astype(np.float64)
    bad = ~np.isfinite(pos_np).all(axis=1)
    if bad.any():
        atom = int(np.flatnonzero(bad)[0])
        struct = next(k for k, (a, b) in enumerate(slices) if a <= atom < b)
        raise ValueError(
            f"pos must be finite: atom {atom} (structure {struct}) is "
            f"{pos_np[atom].tolist()} ({int(bad.sum())} atoms non-finite)"
        )
    if cell_np is not None:
        used = periodic.any(axis=1)
        bad_cell = ~np.isfinite(cell_np).all(axis=(1, 2)) & used
        if bad_cell.any():  # vesin would divide by it (SIGFPE kills the process)
            raise ValueError(
                f"cell must be finite: structure {int(np.flatnonzero(bad_cell)[0])} has "
                f"{cell_np[int(np.flatnonzero(bad_cell)[0])].tolist()}"
            )
        singular = (np.abs(np.linalg.det(cell_np)) < 1e-12) & periodic.all(axis=1)
        if singular.any():
            raise ValueError(
                f"cell must have a nonzero volume where pbc is on: structure "
                f"{int(np.flatnonzero(singular)[0])}"
            )
    from vesin import NeighborList as _VesinNeighborList  # here: importing vesin imports ASE

    calc = _VesinNeighborList(cutoff=float(cutoff), full_list=True)
    srcs, dsts, offs, owners = [], [], [], []
    for k, (start, end) in enumerate(slices):
        if end == start:
            continue
        per = periodic[k]
        box = cell_np[k] if cell_np is not None else np.zeros((3, 3))
        if not per.any():
            box = np.zeros((3, 3))
        sub = pos_np[start:end]
        if not per.any() and np.linalg.norm(sub.max(0) - sub.min(0)) < float(cutoff):
            # the cutoff exceeds the structure: every pair (cell lists would cost ~cutoff^3)
            i, j = np.nonzero(~np.eye(end - start, dtype=bool))
            s = np.zeros((len(i), 3), dtype=np.int64)
        else:
            i, j, s = calc.compute(sub, box, [bool(p) for p in per], quantities="ijS")
        srcs.append(j.astype(np.int64) + start)
        dsts.append(i.astype(np.int64) + start)
        offs.append(s.astype(np.int64))
        owners.append(np.full(len(i), k, dtype=np.int64))
    device = pos.device
    if not srcs:
        return Neighbors(
            torch.zeros(2, 0, dtype=torch.long, device=device),
            pos.new_zeros(0, 3),
            torch.zeros(0, 3, dtype=torch.long, device=device),
        )
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    off, owner = np.concatenate(offs), np.concatenate(owners)
    order = np.lexsort((off[:, 2], off[:, 1], off[:, 0], src, dst))
    edge_index = torch.from_numpy(np.stack([src[order], dst[order]])).to(device)
    cell_shifts = torch.from_numpy(off[order]).to(device)
    if cell is None:
        shifts = pos.new_zeros(len(order), 3)
    else:
        owner_t = torch.from_numpy(owner[order]).to(device)
        shifts = torch.einsum("ek,ekx->ex", cell_shifts.to(pos.dtype), cell[owner_t])
    return Neighbors(edge_index, shifts, cell_shifts)


def _periodicity(pbc: bool | Tensor | None, n_struct: int) -> np.ndarray:
    if pbc is None:
        return np.zeros((n_struct, 3), dtype=bool)
    arr = np.asarray(pbc.detach().cpu() if isinstance(pbc, Tensor) else pbc, dtype=bool)
    if arr.shape == ():
        arr = np.full(3, bool(arr))
    if arr.shape == (3,):
        arr = np.broadcast_to(arr, (n_struct, 3))
    if arr.shape != (n_struct, 3):
        raise ValueError(f"pbc must be a bool, [3] or [B={n_struct}, 3], got shape {arr.shape}")
    return arr


def edge_vectors(pos: Tensor, edge_index: Tensor, shifts: Tensor | None = None) -> Tensor:
    """r_ij = pos[i] - pos[j] - shifts: [E, 3] (differentiable in pos and shifts)."""
    vec = pos[edge_index[1]] - pos[edge_index[0]]
    return vec if shifts is None else vec - shifts
