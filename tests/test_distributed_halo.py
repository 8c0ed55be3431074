"""A local (cutoff) block on one structure split over 2 and 4 CPU processes (gloo) with halo
exchange equals the single-process block: outputs of each rank's atoms, and the gradients with
respect to every atom's features and positions, float64 to 1e-10, for a spatial split (slabs) and
for a split that ignores geometry (random atoms per rank)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from equiscale.distributed import Shard, sharded_local_block
from equiscale.ops import Wigner6jConv, neighbor_list

CUTOFF = 2.5
TOL = 1e-10


def _block(conv: Wigner6jConv):
    def run(pos: torch.Tensor, feats: list[torch.Tensor], edges: torch.Tensor) -> torch.Tensor:
        (h,) = feats
        r = (pos[edges[1]] - pos[edges[0]]).norm(dim=-1)
        alpha = 0.5 * (torch.cos(torch.pi * r / CUTOFF) + 1)  # smooth envelope
        return conv(h, pos, edges, alpha)

    return run


def _close(a, b, what):
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(b.abs().max().item() if b.numel() else 0.0, 1.0)
    assert err <= TOL * scale, f"{what}: max error {err:.3e}"


def _worker(rank: int, world: int, init: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        conv = Wigner6jConv(2, 2, [0, 1, 2]).double()
        block = _block(conv)
        for split in ("slabs", "random"):
            g = torch.Generator().manual_seed(3)
            n = 40
            pos = (8.0 * torch.rand(n, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
            h = torch.randn(n, 9, 3, generator=g, dtype=torch.float64).requires_grad_(True)
            edges = neighbor_list(pos, CUTOFF).edge_index
            full = block(pos, [h], edges)
            gout = torch.randn(full.shape, generator=g, dtype=torch.float64)
            gpos, gh = torch.autograd.grad(full, (pos, h), gout)
            if split == "slabs":
                owner = torch.div(pos.detach()[:, 0] * world, 8.0, rounding_mode="floor").long()
            else:
                owner = torch.randint(0, world, (n,), generator=g)
            mine = (owner == rank).nonzero().flatten()
            pos_r = pos.detach()[mine].clone().requires_grad_(True)
            h_r = h.detach()[mine].clone().requires_grad_(True)
            shard = Shard.gather(int(mine.numel()))
            out = sharded_local_block(block, pos_r, [h_r], shard, CUTOFF)
            tag = f"{split} P={world} rank={rank}"
            _close(out, full.detach()[mine], f"outputs {tag}")
            gp_r, gh_r = torch.autograd.grad(out, (pos_r, h_r), gout[mine])
            _close(gp_r, gpos[mine], f"grad pos {tag}")
            _close(gh_r, gh[mine], f"grad h {tag}")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
def test_local_block_with_halo_exchange_equals_single_process(world, tmp_path):
    mp.spawn(_worker, args=(world, f"file://{tmp_path / 'rendezvous'}"), nprocs=world)
