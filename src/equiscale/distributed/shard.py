"""A sequence split over the ranks of a process group, and the differentiable collectives that the
context-parallel modules need: global sums and maxima, every rank's row, and token windows (halos).

Each rank holds one contiguous block ``[start, stop)`` of a sequence of ``total`` tokens; blocks are
in rank order. A :class:`Shard` records the layout (gathered once with one small ``all_gather``);
the functions below are exact (no approximation) and differentiable: the gradient of a collective is
the adjoint collective (the adjoint of a sum over ranks is a sum over ranks; of a fetch, a
scatter-add back to the owners), so ``loss = sum over ranks of each rank's loss`` has the gradients of
the single-process loss.

Every rank must call the same functions in the same order (they are collectives).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from equiscale.distributed.long_conv import _comm_device, _count, _exchange, _pad_tokens

__all__ = [
    "Shard",
    "connect",
    "all_reduce_sum",
    "all_reduce_max",
    "all_reduce_gradients",
    "gather_rows",
    "fetch_windows",
]

Windows = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Shard:
    """This rank's block of a sequence split over ``group``: ``sizes[p]`` tokens on rank ``p``."""

    group: dist.ProcessGroup | None
    rank: int
    sizes: tuple[int, ...]

    @classmethod
    def gather(
        cls, length: int, group: dist.ProcessGroup | None = None, device: torch.device | str = "cpu"
    ) -> Shard:
        """The layout from every rank's block length (one ``all_gather`` of one integer)."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        world = dist.get_world_size(group)
        t = torch.tensor(
            [length], dtype=torch.int64, device=device if dist.get_backend(group) == "nccl" else "cpu"
        )
        out = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(out, t, group=group)
        return cls(group, dist.get_rank(group), tuple(int(x.item()) for x in out))

    @property
    def world(self) -> int:
        return len(self.sizes)

    @property
    def starts(self) -> list[int]:
        out, s = [], 0
        for n in self.sizes:
            out.append(s)
            s += n
        return out

    @property
    def start(self) -> int:
        return sum(self.sizes[: self.rank])

    @property
    def stop(self) -> int:
        return self.start + self.sizes[self.rank]

    @property
    def total(self) -> int:
        return sum(self.sizes)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: dist.ProcessGroup | None) -> Tensor:  # type: ignore[override]
        ctx.group = group
        y = x.detach().to(_comm_device(x, group)).clone().contiguous()
        _count(y.numel(), y)
        dist.all_reduce(y, group=group)
        return y.to(x.device)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        return _AllReduceSum.apply(g, ctx.group), None


def all_reduce_sum(x: Tensor, shard: Shard) -> Tensor:
    """``sum_p x_p`` on every rank (differentiable: the gradient is again the sum over ranks)."""
    return _AllReduceSum.apply(x, shard.group)


def all_reduce_max(x: Tensor, shard: Shard) -> Tensor:
    """Elementwise ``max_p x_p`` on every rank, without gradient (for shifts that cancel)."""
    y = x.detach().to(_comm_device(x, shard.group)).clone().contiguous()
    _count(y.numel(), y)
    dist.all_reduce(y, op=dist.ReduceOp.MAX, group=shard.group)
    return y.to(x.device)


class _Connect(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, *refs: Tensor) -> Tensor:  # type: ignore[override]
        ctx.refs = [(r.shape, r.dtype, r.device) for r in refs]
        return x.clone()

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        return (g, *(torch.zeros(s, dtype=d, device=v) for s, d, v in ctx.refs))


def connect(x: Tensor, *refs: Tensor) -> Tensor:
    """``x``, tied to ``refs`` in the autograd graph with zero gradient. A rank whose result does not
    depend on its own computation (say, the prediction at the last token, held by another rank) must
    still run backward through it: its part of the graph holds collectives the other ranks wait
    for. ``connect(zeros, own_outputs)`` keeps it in the graph (no ``0 * x``, which is NaN for
    infinite ``x``)."""
    return _Connect.apply(x, *refs)


def gather_rows(x: Tensor, shard: Shard) -> Tensor:
    """``[P, *x.shape]``: every rank's ``x`` (same shape on all), differentiable (an all-reduce of a
    tensor holding this rank's row, so it works with gloo, which has no reduce-scatter)."""
    rows = x.new_zeros((shard.world, *x.shape))
    rows = rows.index_copy(0, torch.tensor([shard.rank], device=x.device), x.unsqueeze(0))
    return all_reduce_sum(rows, shard)


def _piece(shard: Shard, windows: Windows, owner: int, to: int) -> tuple[int, int]:
    """(offset in ``owner``'s block, length) of the window of rank ``to`` that ``owner`` holds."""
    lo, hi = windows[to]
    s0 = shard.starts[owner]
    s, e = max(lo, s0), min(hi, s0 + shard.sizes[owner])
    return (s - s0, e - s) if e > s else (0, 0)


def _fetch_plan(shard: Shard, windows: Windows) -> tuple[list[tuple[int, int]], list[int]]:
    send = [_piece(shard, windows, shard.rank, r) for r in range(shard.world)]
    recv = [_piece(shard, windows, p, shard.rank)[1] for p in range(shard.world)]
    return send, recv


class _Fetch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, d: int, shard: Shard, windows: Windows) -> Tensor:  # type: ignore[override]
        send, recv = _fetch_plan(shard, windows)
        pieces = _exchange(x, d, send, recv, shard.group)
        ctx.args = (d, shard, windows, x.shape[d])
        lo, hi = windows[shard.rank]
        s, e = max(lo, 0), min(hi, shard.total)
        if e > s:
            return _pad_tokens(torch.cat([t for t in pieces if t.shape[d] > 0], d), d, s - lo, hi - e)
        return _pad_tokens(x.narrow(d, 0, 0), d, max(hi - lo, 0), 0)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        d, shard, windows, own = ctx.args
        send, _ = _fetch_plan(shard, windows)
        lo, _ = windows[shard.rank]
        starts = shard.starts
        back = []  # the gradient of each received piece goes back to its owner
        for p in range(shard.world):
            off, n = _piece(shard, windows, owner=p, to=shard.rank)
            back.append((starts[p] + off - lo, n) if n else (0, 0))
        got = _exchange(g.contiguous(), d, back, [n for _, n in send], shard.group)
        shape = list(g.shape)
        shape[d] = own
        gx = g.new_zeros(shape)
        for p, (off, n) in enumerate(send):
            if n:
                gx = gx + _pad_tokens(got[p], d, off, own - off - n)
        return gx, None, None, None


def fetch_windows(x: Tensor, dim: int, shard: Shard, windows: list[tuple[int, int]]) -> Tensor:
    """Tokens ``[lo, hi)`` of the global sequence (``windows[rank]``, zero outside ``[0, total)``)
    from whichever ranks hold them; ``windows`` lists every rank's request (known on all ranks).

    Differentiable: the gradient of each received piece is sent back and added to its owner's.
    """
    if len(windows) != shard.world:
        raise ValueError(f"windows must hold one (lo, hi) per rank ({shard.world}), got {len(windows)}")
    if x.shape[dim] != shard.sizes[shard.rank]:
        raise ValueError(
            f"x has {x.shape[dim]} tokens on axis {dim}, the shard says {shard.sizes[shard.rank]}"
        )
    d = dim % x.dim() - x.dim()
    return _Fetch.apply(x, d, shard, tuple((int(lo), int(hi)) for lo, hi in windows))


def all_reduce_gradients(module: torch.nn.Module, group: dist.ProcessGroup | None = None) -> None:
    """Sum every parameter's gradient over the ranks of ``group`` (in place; a missing gradient
    counts as zero, so ranks whose block did not touch a parameter still take part): after a
    context-parallel backward, each rank then holds the single-process gradient. One all-reduce of
    one flat buffer."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dev = _comm_device(flat, group)
    buf = flat.to(dev)
    _count(buf.numel(), buf)
    dist.all_reduce(buf, group=group)
    buf = buf.to(flat.device)
    i = 0
    for p in params:
        n = p.numel()
        p.grad = buf[i : i + n].view_as(p).clone()
        i += n
