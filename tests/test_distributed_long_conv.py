"""Context-parallel long convolutions over 2 and 4 CPU processes (gloo) equal the single-process
operators: forward and backward, float64 to 1e-10, causal and bidirectional, for lengths that do and
do not divide by the number of processes (and with fewer tokens than processes)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from equiscale.distributed import (
    shard_bounds,
    sharded_fft_conv,
    sharded_fft_cross_conv,
    sharded_fft_cross_dot_conv,
    sharded_fft_dot_conv,
)
from equiscale.ops import fft_conv, fft_cross_conv, fft_cross_dot_conv, fft_dot_conv

TOL = 1e-10


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(b.abs().max().item() if b.numel() else 0.0, 1.0)
    assert err <= TOL * scale, f"{what}: max error {err:.3e} (scale {scale:.3e})"


def _cases():
    """(name, single-process fn, sharded fn, shapes of a and b, token axis, b sharded?)."""
    for causal in (True, False):
        yield (
            "conv",
            causal,
            lambda a, b, c: fft_conv(a, b, c),
            lambda a, b, c, hs: sharded_fft_conv(a, b, c, h_sharded=hs),
            "filter",
        )
        yield (
            "conv_vector_filter",
            causal,
            lambda a, b, c: fft_conv(a, b, c, dim=-3),
            lambda a, b, c, hs: sharded_fft_conv(a, b, c, dim=-3, h_sharded=hs),
            "vfilter",
        )
        yield (
            "cross",
            causal,
            lambda a, b, c: fft_cross_conv(a, b, c, dim=-3),
            lambda a, b, c, hs: sharded_fft_cross_conv(a, b, c, dim=-3),
            "pair",
        )
        yield (
            "dot",
            causal,
            lambda a, b, c: fft_dot_conv(a, b, c, dim=-3, vector_dim=-2),
            lambda a, b, c, hs: sharded_fft_dot_conv(a, b, c, dim=-3, vector_dim=-2),
            "pair_cf",
        )
        yield (
            "crossdot",
            causal,
            lambda a, b, c: torch.cat(
                [fft_cross_dot_conv(a, b, c, dim=-3)[0], fft_cross_dot_conv(a, b, c, dim=-3)[1][..., None]],
                -1,
            ),
            lambda a, b, c, hs: torch.cat(
                [
                    t if i == 0 else t[..., None]
                    for i, t in enumerate(sharded_fft_cross_dot_conv(a, b, c, dim=-3))
                ],
                -1,
            ),
            "pair",
        )


def _operands(kind: str, n: int, causal: bool, g: torch.Generator):
    """Full operands and the token axis of each (a's, b's)."""
    if kind == "filter":
        m = n if causal else 2 * n - 1
        return (
            torch.randn(2, n, 3, generator=g, dtype=torch.float64),
            torch.randn(m, 3, generator=g, dtype=torch.float64),
            -2,
        )
    if kind == "vfilter":
        m = n if causal else 2 * n - 1
        return (
            torch.randn(2, n, 2, 3, generator=g, dtype=torch.float64),
            torch.randn(m, 2, 1, generator=g, dtype=torch.float64),
            -3,
        )
    if kind == "pair":
        return (
            torch.randn(2, n, 2, 3, generator=g, dtype=torch.float64),
            torch.randn(2, n, 2, 3, generator=g, dtype=torch.float64),
            -3,
        )
    return (
        torch.randn(2, n, 3, 2, generator=g, dtype=torch.float64),
        torch.randn(2, n, 3, 2, generator=g, dtype=torch.float64),
        -3,
    )


def _worker(rank: int, world: int, init: str, lengths: list[int]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        for n in lengths:
            for name, causal, single, sharded, kind in _cases():
                for b_sharded in (False, True) if kind in ("filter", "vfilter") else (True,):
                    g = torch.Generator().manual_seed(1000 * n + len(name))
                    a, b, d = _operands(kind, n, causal, g)
                    a.requires_grad_(True)
                    b.requires_grad_(True)
                    y = single(a, b, causal)
                    gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
                    ga, gb = torch.autograd.grad(y, (a, b), gy)
                    s, e = shard_bounds(n, world)[rank]
                    a_r = a.detach().narrow(d, s, e - s).clone().requires_grad_(True)
                    if b_sharded:
                        sb, eb = shard_bounds(b.shape[d], world)[rank]
                        b_r = b.detach().narrow(d, sb, eb - sb).clone().requires_grad_(True)
                    else:
                        b_r = b.detach().clone().requires_grad_(True)
                    y_r = sharded(a_r, b_r, causal, b_sharded)
                    tag = f"{name} causal={causal} N={n} P={world} rank={rank} b_sharded={b_sharded}"
                    dy = d + 1 if name == "dot" else d  # the dot product drops the vector axis
                    _close(y_r, y.detach().narrow(dy, s, e - s), f"forward {tag}")
                    ga_r, gb_r = torch.autograd.grad(y_r, (a_r, b_r), gy.narrow(dy, s, e - s))
                    _close(ga_r, ga.narrow(d, s, e - s), f"grad a {tag}")
                    if b_sharded:
                        _close(gb_r, gb.narrow(d, sb, eb - sb), f"grad b {tag}")
                    else:  # each rank's share; their sum is the single-process gradient
                        dist.all_reduce(gb_r)
                        _close(gb_r, gb, f"grad b (summed over ranks) {tag}")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world,lengths", [(2, [8, 7]), (4, [13, 16, 3])])
def test_sharded_long_convolutions_equal_single_process(world, lengths, tmp_path):
    mp.spawn(_worker, args=(world, f"file://{tmp_path / 'rendezvous'}", lengths), nprocs=world)


def test_without_a_process_group_the_sharded_operators_are_the_plain_ones():
    g = torch.Generator().manual_seed(0)
    u, h = torch.randn(5, 2, generator=g), torch.randn(9, 2, generator=g)
    assert torch.equal(sharded_fft_conv(u, h, causal=False), fft_conv(u, h, causal=False))
    q, k = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.equal(sharded_fft_cross_conv(q, k), fft_cross_conv(q, k))


def test_shard_bounds_cover_the_sequence_like_tensor_split():
    for n in (0, 1, 5, 16, 17):
        for p in (1, 2, 3, 4, 7):
            bounds = shard_bounds(n, p)
            sizes = [t.shape[0] for t in torch.arange(n).tensor_split(p)]
            assert [e - s for s, e in bounds] == sizes
            assert bounds[0][0] == 0 and bounds[-1][1] == n
    with pytest.raises(ValueError, match="parts"):
        shard_bounds(4, 0)
