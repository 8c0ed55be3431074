"""Context-parallel SE3HyenaNet over 2 and 4 CPU processes (gloo): every rank's block of the
outputs, the input gradients, and the parameter gradients summed over the ranks equal the
single-process ones to 1e-10 in float64 (causal and bidirectional, E(3) and SE(3) parity, lengths
that do and do not divide by the number of processes, the recomputation paths of long sequences
and of checkpointed mixers); the recall read-out at the last token reaches every rank."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from equiscale.distributed import Shard, all_reduce_gradients, shard_bounds
from equiscale.models import SE3HyenaNet

TOL = 1e-10


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(b.abs().max().item() if b.numel() else 0.0, 1.0)
    assert err <= TOL * scale, f"{what}: max error {err:.3e} (scale {scale:.3e})"


def _model(causal: bool, parity: str, checkpoint_mixer: bool) -> SE3HyenaNet:
    torch.manual_seed(0)  # the same weights on every rank
    return SE3HyenaNet(
        8,
        4,
        2,
        scalar_in=1,
        vector_in=1,
        scalar_out=2,
        vector_out=2,
        causal=causal,
        parity=parity,
        filter_hidden=8,
        checkpoint_mixer=checkpoint_mixer,
    ).double()


def _check(rank: int, world: int, n: int, causal: bool, parity: str, ckpt: bool) -> None:
    model = _model(causal, parity, ckpt)
    g = torch.Generator().manual_seed(n)
    pos = (3 * torch.randn(2, n, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    vec = torch.randn(2, n, 1, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    sca = torch.randn(2, n, 1, generator=g, dtype=torch.float64)
    outs = model.forward_tokens(pos, vec, sca)
    gouts = [torch.randn(o.shape, generator=g, dtype=torch.float64) for o in outs]
    loss = sum((o * go).sum() for o, go in zip(outs, gouts))
    grads = torch.autograd.grad(loss, [pos, vec, *model.parameters()])

    s, e = shard_bounds(n, world)[rank]
    shard = Shard.gather(e - s)
    pos_r = pos.detach()[:, s:e].clone().requires_grad_(True)
    vec_r = vec.detach()[:, s:e].clone().requires_grad_(True)
    outs_r = model.forward_tokens(pos_r, vec_r, sca[:, s:e], shard=shard)
    tag = f"N={n} P={world} rank={rank} causal={causal} parity={parity} checkpoint={ckpt}"
    for name, o_r, o in zip(("scalars", "vectors", "centres"), outs_r, outs):
        _close(o_r, o.detach()[:, s:e], f"{name} {tag}")
    loss_r = sum((o * go[:, s:e]).sum() for o, go in zip(outs_r, gouts))
    model.zero_grad()
    loss_r.backward()
    _close(pos_r.grad, grads[0][:, s:e], f"grad pos {tag}")
    _close(vec_r.grad, grads[1][:, s:e], f"grad vec {tag}")
    all_reduce_gradients(model)
    for (name, p), gp in zip(model.named_parameters(), grads[2:]):
        _close(p.grad, gp, f"grad {name} {tag}")


def _check_recall(rank: int, world: int, n: int) -> None:
    torch.manual_seed(0)
    model = SE3HyenaNet(8, 4, 1, scalar_in=2, filter_hidden=8).double()
    g = torch.Generator().manual_seed(7)
    pos = torch.randn(3, n, 3, generator=g, dtype=torch.float64)
    types = torch.randn(3, n, 2, generator=g, dtype=torch.float64)
    full = model({"pos": pos, "token_type": types})
    grads = torch.autograd.grad(full.square().sum(), list(model.parameters()), allow_unused=True)
    s, e = shard_bounds(n, world)[rank]
    got = model({"pos": pos[:, s:e], "token_type": types[:, s:e]}, shard=Shard.gather(e - s))
    _close(got, full.detach(), f"recall read-out N={n} P={world} rank={rank}")
    # every rank runs backward (a rank left out of the graph would leave the others waiting in
    # its collectives) and the summed parameter gradients are the single-process ones
    model.zero_grad()
    (got.square().sum() / world).backward()  # each rank holds the whole loss: its share is 1/P
    all_reduce_gradients(model)
    for (name, p), gp in zip(model.named_parameters(), grads):
        _close(p.grad, torch.zeros_like(p) if gp is None else gp, f"recall grad {name} rank={rank}")


def _worker(rank: int, world: int, init: str, cases: list[tuple]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        for case in cases:
            if case[0] == "recall":
                _check_recall(rank, world, case[1])
            else:
                _check(rank, world, *case)
    finally:
        dist.destroy_process_group()


CASES = {
    2: [
        (10, True, "se3", False),
        (9, False, "e3", False),
        (9, True, "e3", True),
        (1030, True, "se3", False),
        ("recall", 9),
    ],
    4: [(16, False, "se3", False), (13, True, "e3", False), (3, False, "se3", False), ("recall", 6)],
}


@pytest.mark.parametrize("world", [2, 4])
def test_context_parallel_se3hyena_equals_single_process(world, tmp_path):
    mp.spawn(_worker, args=(world, f"file://{tmp_path / 'rendezvous'}", CASES[world]), nprocs=world)
