"""Context-parallel long convolutions: the token axis split over the ranks of a process group.

Every rank ``r`` of a group of ``P`` holds one contiguous block ``[s_r, e_r)`` of the token axis of
``a`` (the sequence) and gets back the same block of the single-process result of
:func:`~equiscale.ops.fft_conv`, :func:`~equiscale.ops.fft_cross_conv`,
:func:`~equiscale.ops.fft_dot_conv` or :func:`~equiscale.ops.fft_cross_dot_conv` (same lag
conventions, causal and bidirectional, forward and backward). Blocks may have any lengths
(``torch.tensor_split`` gives lengths that differ by at most one; a rank may hold 0 tokens); every
rank of the group must call the function, in the same order, with the same non-token shapes.

The second operand ``b`` is either

- *replicated* (``b_sharded=False``): the whole ``[M, ...]`` on every rank, as an implicit filter
  computed from shared parameters is; its gradient on each rank is that rank's share (the
  contributions of its own output block), so the gradients of the shared parameters are summed
  over the ranks (what DDP's all-reduce does), or
- *sharded* (``b_sharded=True``, and always for the cross and dot products of two data sequences):
  a contiguous block of ``b``'s token axis on each rank, like ``a``.

Algorithm (a ring of block convolutions). The output block ``r`` is a sum over the input blocks
``q`` (``m = i - j + o`` the lag index, ``o = 0`` causal, ``(M - 1) // 2`` bidirectional)::

    y[i] = sum_q sum_{j in [s_q, e_q)} a[j] (op) b[i - j + o],     i in [s_r, e_r)

and the block pair ``(r, q)`` only needs the lag window ``m in [s_r - e_q + 1 + o, e_r - 1 - s_q + o]``
(length ``|r| + |q| - 1``, zero outside ``[0, M)``). At step ``k = 0 .. P-1`` rank ``r`` receives
block ``q = (r - k) mod P`` of ``a`` and its lag window of ``b`` (one ``all_to_all`` each, pieces of
any length, none where the window is empty: the causal mode skips every ``q > r``) and adds the
exact linear convolution of the two, by FFT of length ``next_fast_size(|q| + |r| - 1)``
(overlap-save: the wrapped part of the circular convolution falls on outputs that are cropped).
Backward runs the same steps: it fetches the operands again, takes the block convolution's
gradients, and returns them to their owners with the reverse ``all_to_all`` (a fetch's adjoint is
a scatter-add). Only the local blocks are saved for backward.

Cost per rank, with ``B = N / P`` tokens per block and ``S`` numbers per token (batch x channels x
components; bytes = numbers x itemsize, 8 in float64):

- memory: the own blocks of ``a``, ``b`` (``B S`` each; ``M S`` for a replicated ``b``) and, one step at
  a time, a fetched block (``B S``), a window (``2 B S``) and their spectra (``~2 B S`` complex):
  ``O(N S / P)``, where one process needs ``O(N S)``. That is the point: one device's memory caps the
  context, not its arithmetic.
- communication: forward sends each own block of ``a`` to the ranks that need it (all ``P - 1``
  bidirectional, about half causal) and the pieces of ``b`` that overlap their windows (about
  ``2 N S`` numbers; none for a replicated ``b``): at most ``~3 N S`` numbers per rank per call,
  about 3x an all-gather of ``a`` (which would need ``O(N S)`` memory). Backward sends twice that
  (the operands again and the gradients back).
- arithmetic: ``P`` block FFTs of length ``~2B`` (about half of them skipped in the causal mode),
  ``O(N S log B)`` per rank: the same order as one process's ``O(N S log N)``, not ``1/P`` of it. A
  distributed FFT (all-to-all transposes) would also divide the arithmetic, at the cost of
  transposes of the whole padded spectrum; it is not implemented.

Accuracy: the block convolutions are exact linear convolutions (no wrap-around), so the result
equals the single-process one to float rounding (float64: ~1e-15 relative, tested to 1e-10 with 2
and 4 processes).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from equiscale.ops.long_conv import (
    _combine,
    _compute_dtype,
    _offset,
    _rfft,
    fft_conv,
    fft_cross_conv,
    fft_cross_dot_conv,
    fft_dot_conv,
    next_fast_size,
)

__all__ = [
    "sharded_fft_conv",
    "sharded_fft_cross_conv",
    "sharded_fft_dot_conv",
    "sharded_fft_cross_dot_conv",
    "shard_bounds",
    "communication_bytes",
]

_META = 10  # numbers exchanged per rank to check the layout: 2 lengths + up to 8 other dims
_SENT = [0]  # bytes this process sent to other ranks through the functions of this package


def communication_bytes(reset: bool = False) -> int:
    """Bytes this process has sent to other ranks through :mod:`equiscale.distributed` (token
    exchanges: their exact payload; all-reduces: the payload, which a ring all-reduce sends about
    twice); ``reset=True`` starts the count again from zero."""
    sent = _SENT[0]
    if reset:
        _SENT[0] = 0
    return sent


def _count(numbers: int, x: Tensor) -> None:
    _SENT[0] += int(numbers) * x.element_size()


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of ``torch.tensor_split``'s ``parts`` contiguous blocks of ``n`` tokens.

    >>> shard_bounds(10, 4)
    [(0, 3), (3, 6), (6, 8), (8, 10)]
    """
    if n < 0 or parts < 1:
        raise ValueError(f"need n >= 0 and parts >= 1, got n={n}, parts={parts}")
    q, rem = divmod(n, parts)
    out, s = [], 0
    for p in range(parts):
        e = s + q + (1 if p < rem else 0)
        out.append((s, e))
        s = e
    return out


def _active(group: dist.ProcessGroup | None) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def _comm_device(x: Tensor, group: dist.ProcessGroup | None) -> torch.device:
    return x.device if dist.get_backend(group) == "nccl" else torch.device("cpu")


def _layout(
    a: Tensor, b: Tensor, d: int, b_sharded: bool, group: dist.ProcessGroup | None
) -> tuple[list[int], list[int]]:
    """All ranks' block lengths of ``a`` and ``b`` (one all_gather), after checking that every rank
    holds the same non-token shapes (the same error is raised on every rank, so none hangs)."""
    rest = [s for i, s in enumerate(a.shape) if i != a.dim() + d]
    if len(rest) > _META - 2:
        raise ValueError(f"a has too many axes ({a.dim()}) for a sharded convolution")
    meta = torch.full((_META,), -1, dtype=torch.int64, device=_comm_device(a, group))
    meta[0], meta[1] = a.shape[d], b.shape[d]
    meta[2 : 2 + len(rest)] = torch.tensor(rest, dtype=torch.int64)
    allmeta = [torch.empty_like(meta) for _ in range(dist.get_world_size(group))]
    dist.all_gather(allmeta, meta, group=group)
    allmeta = [m.cpu() for m in allmeta]
    if any(not torch.equal(m[2:], allmeta[0][2:]) for m in allmeta):
        shapes = [tuple(int(s) for s in m[2:] if s >= 0) for m in allmeta]
        raise ValueError(f"every rank must hold the same non-token shape of the sequence, got {shapes}")
    sizes_a = [int(m[0]) for m in allmeta]
    sizes_b = [int(m[1]) for m in allmeta]
    if not b_sharded and len(set(sizes_b)) != 1:
        raise ValueError(
            f"a replicated b (b_sharded=False) must have one length on every rank, got {sizes_b}"
        )
    return sizes_a, sizes_b


def _starts(sizes: list[int]) -> list[int]:
    out, s = [], 0
    for n in sizes:
        out.append(s)
        s += n
    return out


class _Plan:
    """Who sends what to whom at each ring step; the same on every rank (a function of the layout)."""

    def __init__(self, sizes_a: list[int], sizes_b: list[int] | None, m: int, causal: bool) -> None:
        self.p = len(sizes_a)
        self.sa, self.la = _starts(sizes_a), sizes_a
        self.sb = _starts(sizes_b) if sizes_b is not None else None
        self.lb = sizes_b
        self.m, self.off = m, _offset(causal, m)

    def window(self, r: int, q: int) -> tuple[int, int]:
        """Lag window ``[lo, lo + length)`` of output block ``r`` from input block ``q``."""
        lo = self.sa[r] - (self.sa[q] + self.la[q]) + 1 + self.off
        return lo, self.la[r] + self.la[q] - 1

    def needed(self, r: int, q: int) -> bool:
        if self.la[r] == 0 or self.la[q] == 0:
            return False
        lo, length = self.window(r, q)
        return lo < self.m and lo + length > 0

    def source(self, r: int, k: int) -> int:
        return (r - k) % self.p

    def a_splits(self, me: int, k: int) -> tuple[list[int], list[int]]:
        """(send lengths per destination, receive lengths per source) for block ``a`` at step ``k``."""
        send = [0] * self.p
        recv = [0] * self.p
        dst = (me + k) % self.p
        if self.needed(dst, me):
            send[dst] = self.la[me]
        src = self.source(me, k)
        if self.needed(me, src):
            recv[src] = self.la[src]
        return send, recv

    def b_pieces(self, owner: int, r: int, k: int) -> tuple[int, int]:
        """(offset in the owner's block, length) of ``b`` that rank ``r`` needs at step ``k``."""
        q = self.source(r, k)
        if not self.needed(r, q):
            return 0, 0
        lo, length = self.window(r, q)
        s, e = max(lo, self.sb[owner]), min(lo + length, self.sb[owner] + self.lb[owner])
        return (s - self.sb[owner], e - s) if e > s else (0, 0)


def _all_to_all_rows(
    x: Tensor, send_counts: list[int], recv_counts: list[int], group: dist.ProcessGroup | None
) -> Tensor:
    """Rows of ``x`` (grouped by destination, ``send_counts`` each) to every rank; the rows received,
    grouped by source. Bytes sent to other ranks are counted (:func:`communication_bytes`)."""
    width = math.prod(x.shape[1:])
    dev = _comm_device(x, group)
    inp = x.reshape(x.shape[0], width).to(dev).contiguous()
    out = torch.empty(sum(recv_counts), width, dtype=x.dtype, device=dev)
    me = dist.get_rank(group)
    _count(sum(n for p, n in enumerate(send_counts) if p != me) * width, x)
    dist.all_to_all_single(
        out, inp, output_split_sizes=recv_counts, input_split_sizes=send_counts, group=group
    )
    return out.to(x.device).reshape(sum(recv_counts), *x.shape[1:])


def _exchange(
    x: Tensor, d: int, send: list[tuple[int, int]], recv: list[int], group: dist.ProcessGroup | None
) -> list[Tensor]:
    """Send ``x.narrow(d, *send[p])`` to each rank ``p``; return the pieces received, by source."""
    xt = x.movedim(d, 0)
    rows = torch.cat([xt.narrow(0, s, n) for s, n in send], 0)
    out = _all_to_all_rows(rows, [n for _, n in send], recv, group)
    return [t.movedim(0, d) for t in out.split(recv, 0)]


def _pad_tokens(x: Tensor, d: int, before: int, after: int) -> Tensor:
    if before == 0 and after == 0:
        return x
    return torch.nn.functional.pad(x.movedim(d, -1), (before, after)).movedim(-1, d)


def _window_conv(a_q: Tensor, w: Tensor, kind: str, d: int, v: int, length: int) -> Tensor:
    """``y[i'] = sum_j' a_q[j'] (op) w[i' - j' + |q| - 1]`` for ``i' < length``: the exact linear
    convolution of a block with its lag window, by FFT.

    A circular convolution of size ``S >= |w| = length + |q| - 1`` suffices (overlap-save): the
    wrapped tail of the full linear convolution (length ``|q| + |w| - 1``) lands on indices below
    ``|q| - 1``, which are cropped, so the FFTs are ``~2B`` long, not ``~3B``."""
    lq = a_q.shape[d]
    size = next_fast_size(w.shape[d])
    spec = _combine(kind, _rfft(a_q, size, d), _rfft(w, size, d), v)
    d_out = d + 1 if kind == "dot" else d
    return torch.fft.irfft(spec, n=size, dim=d_out).narrow(d_out, lq - 1, length)


def _output_shape(a: Tensor, b: Tensor, kind: str, d: int, v: int) -> list[int]:
    sa, sb = list(a.shape), list(b.shape)
    sa[d] = sb[d] = 1
    shape = list(torch.broadcast_shapes(tuple(sa), tuple(sb)))
    shape[d] = a.shape[d]
    if kind == "dot":
        del shape[v]
    elif kind == "crossdot":
        shape[v] = 4
    return shape


class _ShardedConv(torch.autograd.Function):
    """The ring of block convolutions of the module docstring; saves only the local blocks."""

    @staticmethod
    def _fetch(
        a: Tensor,
        b: Tensor,
        plan: _Plan,
        me: int,
        k: int,
        d: int,
        b_sharded: bool,
        group: dist.ProcessGroup | None,
    ) -> tuple[Tensor | None, Tensor | None, int]:
        send_a, recv_a = plan.a_splits(me, k)
        got = _exchange(a, d, [(0, n) for n in send_a], recv_a, group)
        src = plan.source(me, k)
        if b_sharded:
            send_b = [plan.b_pieces(me, r, k) for r in range(plan.p)]
            recv_b = [plan.b_pieces(p, me, k)[1] for p in range(plan.p)]
            pieces = _exchange(b, d, send_b, recv_b, group)
        if not plan.needed(me, src):
            return None, None, 0
        lo, length = plan.window(me, src)
        s, e = max(lo, 0), min(lo + length, plan.m)
        if b_sharded:
            inner = torch.cat([t for t in pieces if t.shape[d] > 0], d)
        else:
            inner = b.narrow(d, s, e - s)
        w = _pad_tokens(inner, d, s - lo, lo + length - e)
        return got[src], w, lo

    @staticmethod
    def forward(
        ctx,
        a: Tensor,
        b: Tensor,
        kind: str,
        d: int,
        v: int,  # type: ignore[override]
        b_sharded: bool,
        plan: _Plan,
        group: dist.ProcessGroup | None,
    ) -> Tensor:
        me = dist.get_rank(group)
        y = a.new_zeros(_output_shape(a, b, kind, d, v))
        for k in range(plan.p):
            a_q, w, _ = _ShardedConv._fetch(a, b, plan, me, k, d, b_sharded, group)
            if a_q is not None:
                y = y + _window_conv(a_q, w, kind, d, v, a.shape[d])
        ctx.save_for_backward(a, b)
        ctx.args = (kind, d, v, b_sharded, plan, group)
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        a, b = ctx.saved_tensors
        kind, d, v, b_sharded, plan, group = ctx.args
        me = dist.get_rank(group)
        ga, gb = torch.zeros_like(a), torch.zeros_like(b)
        for k in range(plan.p):
            a_q, w, lo = _ShardedConv._fetch(a, b, plan, me, k, d, b_sharded, group)
            src = plan.source(me, k)
            g_aq = g_w = None
            if a_q is not None:
                with torch.enable_grad():
                    a_q = a_q.detach().requires_grad_(True)
                    w = w.detach().requires_grad_(True)
                    y = _window_conv(a_q, w, kind, d, v, a.shape[d])
                    g_aq, g_w = torch.autograd.grad(y, (a_q, w), gy)
            # the gradient of the fetched block goes back to its owner (the reverse of the fetch)
            send_a, _ = plan.a_splits(me, k)
            back = [(0, 0)] * plan.p
            if g_aq is not None:
                back[src] = (0, g_aq.shape[d])
            got = _exchange(a.narrow(d, 0, 0) if g_aq is None else g_aq, d, back, send_a, group)
            dst = (me + k) % plan.p
            if send_a[dst]:
                ga = ga + got[dst]
            if b_sharded:
                # pieces of the window's gradient back to the owners of those lags
                send_w, recv_own = [], []
                for p in range(plan.p):
                    off, n = plan.b_pieces(p, me, k)
                    send_w.append(((plan.sb[p] + off) - lo, n) if n else (0, 0))
                    recv_own.append(plan.b_pieces(me, p, k)[1])
                src_t = g_w if g_w is not None else b.narrow(d, 0, 0)
                got_b = _exchange(src_t, d, send_w, recv_own, group)
                for p in range(plan.p):
                    off, n = plan.b_pieces(me, p, k)
                    if n:
                        gb = gb + _pad_tokens(got_b[p], d, off, b.shape[d] - off - n)
            elif g_w is not None:
                s, e = max(lo, 0), min(lo + g_w.shape[d], plan.m)
                gb = gb + _pad_tokens(g_w.narrow(d, s - lo, e - s), d, s, plan.m - e)
        return ga, gb, None, None, None, None, None, None


def _sharded(
    kind: str,
    a: Tensor,
    b: Tensor,
    causal: bool,
    dim: int,
    vector_dim: int,
    b_sharded: bool,
    group: dist.ProcessGroup | None,
    names: tuple[str, str],
) -> Tensor:
    for name, x in zip(names, (a, b)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(
                f"{name} must be a floating torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}"
            )
    if a.dtype != b.dtype:
        raise TypeError(f"{names[0]} and {names[1]} must share a dtype, got {a.dtype} and {b.dtype}")
    if not -a.dim() <= dim < a.dim() or dim in (-1, a.dim() - 1):
        raise ValueError(
            f"dim must index a token axis of {names[0]} (not the last), got {dim} for shape {tuple(a.shape)}"
        )
    d = dim % a.dim() - a.dim()
    if b.dim() < -d:
        raise ValueError(
            f"{names[1]} with shape {tuple(b.shape)} has no axis matching token axis "
            f"{dim} of {names[0]} with shape {tuple(a.shape)}"
        )
    v = vector_dim
    if kind != "mul":
        for name, x in zip(names, (a, b)):
            if not (-x.dim() <= v < 0 and x.shape[v] == 3):
                raise ValueError(
                    f"{name} must have a vector axis of size 3 at vector_dim={v}, got shape {tuple(x.shape)}"
                )
        if not v > d:
            raise ValueError(f"vector_dim ({v}) must come after the token axis ({d})")
    sizes_a, sizes_b = _layout(a, b, d, b_sharded, group)
    n = sum(sizes_a)
    m = sum(sizes_b) if b_sharded else sizes_b[0]
    if causal and m != n:
        raise ValueError(
            f"causal convolution needs {names[1]} of total length N={n} along the token axis, got {m}"
        )
    if not causal and n > 0 and m == 0:
        raise ValueError(f"{names[1]} must have total length >= 1 along the token axis, got 0")
    plan = _Plan(sizes_a, sizes_b if b_sharded else None, m, causal)
    ct = _compute_dtype(a)
    y = _ShardedConv.apply(a.to(ct), b.to(ct), kind, d, v, b_sharded, plan, group)
    return y.to(a.dtype)


def sharded_fft_conv(
    u: Tensor,
    h: Tensor,
    causal: bool = True,
    dim: int = -2,
    *,
    h_sharded: bool = False,
    group: dist.ProcessGroup | None = None,
) -> Tensor:
    """:func:`~equiscale.ops.fft_conv` with the token axis of ``u`` split over ``group``.

    Args:
        u: this rank's block ``[..., N_r, D]`` (token axis ``dim``).
        h: the whole filter ``[N, D]`` / ``[M, D]`` on every rank (``h_sharded=False``), or this
            rank's block of it (``h_sharded=True``).
        group: the process group (default: the world); without an initialised group of more than
            one process, this is :func:`~equiscale.ops.fft_conv`.
    Returns:
        this rank's block ``[..., N_r, D]`` of the single-process result.
    """
    if not _active(group):
        return fft_conv(u, h, causal, dim)
    return _sharded("mul", u, h, causal, dim, -1, h_sharded, group, ("u", "h"))


def sharded_fft_cross_conv(
    q: Tensor,
    k: Tensor,
    causal: bool = True,
    dim: int = -2,
    vector_dim: int = -1,
    *,
    group: dist.ProcessGroup | None = None,
) -> Tensor:
    """:func:`~equiscale.ops.fft_cross_conv` of two sequences, both split over ``group``."""
    if not _active(group):
        return fft_cross_conv(q, k, causal, dim, vector_dim)
    return _sharded("cross", q, k, causal, dim, vector_dim, True, group, ("q", "k"))


def sharded_fft_dot_conv(
    q: Tensor,
    k: Tensor,
    causal: bool = True,
    dim: int = -2,
    vector_dim: int = -1,
    *,
    group: dist.ProcessGroup | None = None,
) -> Tensor:
    """:func:`~equiscale.ops.fft_dot_conv` of two sequences, both split over ``group``."""
    if not _active(group):
        return fft_dot_conv(q, k, causal, dim, vector_dim)
    return _sharded("dot", q, k, causal, dim, vector_dim, True, group, ("q", "k"))


def sharded_fft_cross_dot_conv(
    q: Tensor,
    k: Tensor,
    causal: bool = True,
    dim: int = -2,
    vector_dim: int = -1,
    *,
    group: dist.ProcessGroup | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`~equiscale.ops.fft_cross_dot_conv` of two sequences, both split over ``group``."""
    if not _active(group):
        return fft_cross_dot_conv(q, k, causal, dim, vector_dim)
    y = _sharded("crossdot", q, k, causal, dim, vector_dim, True, group, ("q", "k"))
    return y.narrow(vector_dim, 0, 3), y.select(vector_dim, 3)
