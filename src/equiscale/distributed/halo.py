"""Local (cutoff) blocks on one structure split over ranks: halo (ghost-atom) exchange.

Each rank owns a set of atoms (any split: contiguous in sequence order, spatial, or arbitrary) and
computes the outputs of its own atoms. An output of a cutoff block at atom ``i`` depends on the atoms
within ``cutoff`` of ``i``, so each rank first receives the *halo*: the atoms of other ranks that lie
within ``cutoff`` of its own. With ``r_c`` the cutoff, rank ``p`` sends to rank ``q`` every atom of
``p`` inside ``q``'s axis-aligned box of owned atoms grown by ``r_c`` (a superset of the true halo,
found from one exchange of 6 numbers per rank; the neighbour list then keeps exactly the pairs
closer than ``r_c``). The block runs on own + halo atoms with the edges that end on own atoms, and
returns the own atoms' rows: exactly the single-process result for them.

The exchange is differentiable in the positions and the features: the gradients of the halo
copies go back to their owners and are added there (positions included, so forces ``-dE/dr`` of an
energy summed over ranks are exact). Cost per rank: its atoms plus its halo; for a spatial split of
a structure of density ``rho`` into slabs of width ``w``, the halo is ``~2 rho A r_c`` atoms (``A`` the
slab's cross-section) against ``rho A w`` owned: a small fraction when ``w >> r_c``. A split that
ignores geometry (random atoms per rank) makes every box the whole structure: still exact, with
every atom in every halo.

Periodic cells are not handled here (open boundaries, as in molecules and proteins in vacuum or
implicit solvent).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from equiscale.distributed.long_conv import _all_to_all_rows, _comm_device
from equiscale.distributed.shard import Shard, gather_rows
from equiscale.ops.neighbors import neighbor_list

__all__ = ["halo_exchange", "sharded_local_block"]


class _SendRows(torch.autograd.Function):
    """Send ``x[index]`` (grouped by destination) and receive the other ranks' rows; backward sends
    the received rows' gradients back and adds them to ``x`` at ``index``."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        index: Tensor,
        send_counts: list[int],  # type: ignore[override]
        recv_counts: list[int],
        group: dist.ProcessGroup | None,
    ) -> Tensor:
        ctx.save_for_backward(index)
        ctx.args = (x.shape, send_counts, recv_counts, group)
        return _all_to_all_rows(x.index_select(0, index), send_counts, recv_counts, group)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        shape, send_counts, recv_counts, group = ctx.args
        back = _all_to_all_rows(g.contiguous(), recv_counts, send_counts, group)
        gx = g.new_zeros(shape).index_add(0, index, back)
        return gx, None, None, None, None


def halo_exchange(
    pos: Tensor, feats: list[Tensor], shard: Shard, cutoff: float
) -> tuple[Tensor, list[Tensor]]:
    """Own atoms followed by the halo: ``(pos [n_own + n_halo, 3], [f [n_own + n_halo, ...]])``.

    Args:
        pos: ``[n_own, 3]`` this rank's atoms.
        feats: per-atom tensors ``[n_own, ...]`` sent along with the positions.
        shard: the layout of the atoms over the ranks (only the group and rank are used).
        cutoff: the block's radius; every atom of another rank within ``cutoff`` of an own atom is
            in the halo (and a few more: the boxes are a superset).
    """
    if not float(cutoff) > 0:
        raise ValueError(f"cutoff must be > 0, got {cutoff}")
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must be [n_own, 3], got {tuple(pos.shape)}")
    for i, f in enumerate(feats):
        if f.shape[0] != pos.shape[0]:
            raise ValueError(f"feats[{i}] has {f.shape[0]} rows for {pos.shape[0]} atoms")
    n = pos.shape[0]
    with torch.no_grad():
        if n:
            box = torch.cat([pos.amin(0) - cutoff, pos.amax(0) + cutoff])
        else:  # an empty box: nobody sends to this rank
            box = torch.cat([pos.new_full((3,), float("inf")), pos.new_full((3,), float("-inf"))])
        boxes = gather_rows(box.to(torch.float64), shard)  # [P, 6]
        p64 = pos.detach().to(torch.float64)
        index, send_counts = [], []
        for q in range(shard.world):
            if q == shard.rank:
                send_counts.append(0)
                continue
            inside = ((p64 >= boxes[q, :3]) & (p64 <= boxes[q, 3:])).all(1)
            sel = inside.nonzero().flatten()
            index.append(sel)
            send_counts.append(int(sel.numel()))
        index_t = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
        counts = torch.tensor(send_counts, dtype=torch.int64, device=_comm_device(pos, shard.group))
        recv = torch.empty_like(counts)
        dist.all_to_all_single(recv, counts, group=shard.group)
        recv_counts = [int(c) for c in recv.cpu()]
    index_t = index_t.to(pos.device)
    halo_pos = _SendRows.apply(pos, index_t, send_counts, recv_counts, shard.group)
    out = [torch.cat([f, _SendRows.apply(f, index_t, send_counts, recv_counts, shard.group)]) for f in feats]
    return torch.cat([pos, halo_pos]), out


def sharded_local_block(
    block: Callable[..., Tensor], pos: Tensor, feats: list[Tensor], shard: Shard, cutoff: float
) -> Tensor:
    """``block(pos_all, feats_all, edge_index)`` for this rank's atoms, with the halo from the
    other ranks: the rows ``[n_own, ...]`` of the single-process result.

    ``block`` gets the own + halo atoms and the edges ``(j -> i)`` closer than ``cutoff`` that end on
    own atoms (``i < n_own``), and returns per-atom outputs for all of them (halo rows are dropped).
    """
    pos_all, feats_all = halo_exchange(pos, feats, shard, cutoff)
    edges = neighbor_list(pos_all, cutoff).edge_index
    edges = edges[:, edges[1] < pos.shape[0]]
    return block(pos_all, feats_all, edges)[: pos.shape[0]]
