"""Exact long convolutions by FFT: scalar, cross-product and dot-product, each with an O(N^2) reference.

The three operators share one definition of a (linear, never circular) convolution along the token
axis ``dim`` (default ``-2``). With ``a`` of length ``N`` and ``b`` of length ``M``::

    causal=True  (M == N):   y[i] = sum_{j=0..i}            a[j] (op) b[i - j]
    causal=False (any M):    y[i] = sum_{j=0..N-1, 0<=m<M}  a[j] (op) b[m],  m = i - j + (M - 1) // 2

i.e. in the bidirectional mode ``b[m]`` is the weight of lag ``m - (M - 1) // 2``: an implicit filter of
length ``M = 2N - 1`` covers every lag ``-(N-1) .. N-1`` (its centre, index ``N - 1``, is lag 0), and
two data sequences of equal length ``M = N`` give numpy's ``convolve(mode="same")``. Use the
bidirectional mode for data without a natural order or direction (a particle system, a molecule read
in both directions); use the causal mode for sequences where token ``i`` may only see ``j <= i``.

``(op)`` is a per-channel product for :func:`fft_conv`, the cross product for :func:`fft_cross_conv`
and the dot product for :func:`fft_dot_conv`.

Fast path: both operands are zero-padded to ``n = next_fast_size(N + M - 1)`` (at least ``2N - 1``,
so the circular convolution computed by the FFT equals the linear one: no wrap-around), transformed
with ``torch.fft.rfft``, multiplied, and transformed back: O((N + M) log(N + M)) time. The cross
product is done on components, ``Y_c = sum_{ab} eps_cab A_a B_b`` in the frequency domain: 6 forward
and 3 inverse real FFTs; the dot product needs 6 forward and 1 inverse; :func:`fft_cross_dot_conv`
gives both from the same 6 forward FFTs.

Memory: autograd would keep every complex spectrum until backward. The fast paths are one
``torch.autograd.Function`` that saves only its two real inputs and recomputes the spectra in
backward, where the gradients are again FFT long convolutions with the reversed operands (see
``_SpectralConv``); backward is itself differentiable (gradgradcheck in the tests).

Accuracy: float64 agrees with the ``*_reference`` direct sums to ~1e-15 relative (tested to 1e-10
for N = 1, 7, 64, 129). float32 error grows slowly with N: ``max|y - y_ref| <= 1e-5 * max|y_ref|``
for N <= 4096 with inputs of comparable magnitude (tested). float16/bfloat16 inputs are computed in
float32 and cast back (CPU FFTs have no half precision).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = [
    "next_fast_size",
    "fft_conv",
    "fft_cross_conv",
    "fft_dot_conv",
    "fft_cross_dot_conv",
    "fft_conv_reference",
    "fft_cross_conv_reference",
    "fft_dot_conv_reference",
]


@functools.lru_cache(maxsize=4096)
def next_fast_size(n: int) -> int:
    """The smallest even ``m >= n`` whose prime factors are 2, 3, 5, 7 (fast sizes of pocketfft/cuFFT).

    >>> next_fast_size(129), next_fast_size(2 * 8192 - 1)
    (140, 16384)
    """
    if n <= 2:
        return 2
    best = 2 ** ((n - 1).bit_length())
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = 2 * p3  # at least one factor 2: even, so rfft's half spectrum is exact
                while m < n:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


# ---------------------------------------------------------------------------------------------------
# checks shared by the fast and the reference paths


def _check_pair(
    name_a: str, a: Tensor, name_b: str, b: Tensor, dim: int, causal: bool, vector: bool, vector_dim: int = -1
) -> tuple[int, int, int]:
    """Validate shapes; return (token axis as a negative index, N, M)."""
    for name, x in ((name_a, a), (name_b, b)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not (x.is_floating_point()):
            raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have a token axis and a channel axis, got shape {tuple(x.shape)}")
        if vector and not (-x.dim() <= vector_dim < 0 and x.shape[vector_dim] == 3):
            raise ValueError(
                f"{name} must have a vector axis of size 3 at vector_dim={vector_dim}, "
                f"got shape {tuple(x.shape)}"
            )
    if a.dtype != b.dtype and not torch.is_autocast_enabled(a.device.type):  # autocast: computed in float32
        raise TypeError(f"{name_a} and {name_b} must share a dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on one device, got {a.device} and {b.device}")
    if not -a.dim() <= dim < a.dim() or dim in (-1, a.dim() - 1):
        raise ValueError(
            f"dim must index a token axis of {name_a} (not the last), got {dim} for shape {tuple(a.shape)}"
        )
    d = dim % a.dim() - a.dim()  # negative: the same axis of a, b and any broadcast result
    n = a.shape[d]
    db = d
    if b.dim() < -d:
        raise ValueError(
            f"{name_b} with shape {tuple(b.shape)} has no axis matching token axis {dim} "
            f"of {name_a} with shape {tuple(a.shape)}"
        )
    m = b.shape[db]
    if causal and m != n:
        raise ValueError(
            f"causal convolution needs {name_b} of length N={n} along the token axis, "
            f"got {m} (shape {tuple(b.shape)})"
        )
    if not causal and n > 0 and m == 0:
        raise ValueError(f"{name_b} must have length >= 1 along the token axis, got 0")
    return d, n, m


def _empty_result(a: Tensor, b: Tensor, d: int, tail: tuple[int, ...] | None) -> Tensor:
    """Zeros with the broadcast shape of the result (used when N == 0 or a channel axis is empty)."""
    a_shape = list(a.shape)
    b_shape = list(b.shape)
    b_shape[d] = a_shape[d]
    shape = list(torch.broadcast_shapes(tuple(a_shape), tuple(b_shape)))
    if tail is not None:
        shape = shape[:-1] + list(tail)
    return a.new_zeros(shape)


def _compute_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _vector_axis(d: int, vector_dim: int) -> int:
    if not vector_dim > d:
        raise ValueError(f"vector_dim ({vector_dim}) must come after the token axis ({d})")
    return vector_dim


def _offset(causal: bool, m: int) -> int:
    return 0 if causal else (m - 1) // 2


# ---------------------------------------------------------------------------------------------------
# fast paths


def _cross_spectra(fq: Tensor, fk: Tensor, v: int = -1) -> Tensor:
    """``Y_c = sum_ab eps_cab Q_a K_b`` on the vector axis ``v`` (size 3) of two complex spectra."""
    q0, q1, q2 = fq.unbind(v)
    k0, k1, k2 = fk.unbind(v)
    return torch.stack((q1 * k2 - q2 * k1, q2 * k0 - q0 * k2, q0 * k1 - q1 * k0), dim=v)


def _combine(kind: str, fa: Tensor, fb: Tensor, v: int) -> Tensor:
    """Pointwise product of two spectra: per channel, cross, dot, or cross and dot side by side."""
    if kind == "mul":
        return fa * fb
    if kind == "cross":
        return _cross_spectra(fa, fb, v)
    if kind == "dot":
        return (fa * fb).sum(v)
    return torch.cat([_cross_spectra(fa, fb, v), (fa * fb).sum(v, keepdim=True)], dim=v)


def _rfft(x: Tensor, size: int, d: int) -> Tensor:
    """``torch.fft.rfft(x, n=size, dim=d)``, computed on a zero-padded copy with the token axis last
    (2-3x faster on the CPU than a transform along a strided axis); returned as a view in ``x``'s
    axis order."""
    xp = torch.nn.functional.pad(x.movedim(d, -1), (0, size - x.shape[d]))
    return torch.fft.rfft(xp, dim=-1).movedim(-1, d)


class _SpectralConv(torch.autograd.Function):
    """``crop(irfft(combine(rfft(a), rfft(b))))`` that saves only ``a`` and ``b`` for backward.

    Autograd through the plain FFT code keeps every complex spectrum alive until backward (several
    times the inputs' memory). Here backward recomputes what it needs: with ``rev`` the reversal
    along the tokens and ``o`` the lag offset, the gradients are again long convolutions,

        grad_a = crop_{M-1-o}( gy (*) rev(b) ),      grad_b = crop_{N-1-o}( gy (*) rev(a) ),

    with ``(*)`` the per-channel, cross (``rev(b) x gy`` and ``gy x rev(a)``) or dot (``gy rev(b)``)
    product, all by FFT. Backward is written in differentiable torch ops, so double backward works.
    """

    @staticmethod
    def forward(
        ctx,
        a: Tensor,
        b: Tensor,
        kind: str,
        causal: bool,
        d: int,  # type: ignore[override]
        v: int = -1,
    ) -> Tensor:
        n, m = a.shape[d], b.shape[d]
        size = next_fast_size(n + m - 1)
        spec = _combine(kind, _rfft(a, size, d), _rfft(b, size, d), v)
        d_out = d + 1 if kind == "dot" else d  # the dot product drops the vector axis
        y = torch.fft.irfft(spec, n=size, dim=d_out).narrow(d_out, _offset(causal, m), n)
        ctx.save_for_backward(a, b)
        ctx.kind, ctx.causal, ctx.d, ctx.v = kind, causal, d, v
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        a, b = ctx.saved_tensors
        kind, d, v = ctx.kind, ctx.d, ctx.v
        n, m = a.shape[d], b.shape[d]
        off = _offset(ctx.causal, m)
        size = next_fast_size(max(n + m - 1, 2 * n - 1))
        if kind == "dot":
            gy = gy.unsqueeze(v)
        fg = _rfft(gy, size, d)
        if kind == "crossdot":
            fg_c, fg_d = fg.narrow(v, 0, 3), fg.narrow(v, 3, 1)

        def grad_of(other: Tensor, first: bool) -> Tensor:
            fo = _rfft(other.flip(d), size, d)
            if kind == "mul" or kind == "dot":
                return fg * fo
            if kind == "cross":
                return _cross_spectra(fo, fg, v) if first else _cross_spectra(fg, fo, v)
            cross = _cross_spectra(fo, fg_c, v) if first else _cross_spectra(fg_c, fo, v)
            return cross + fg_d * fo

        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            ga = torch.fft.irfft(grad_of(b, True), n=size, dim=d).narrow(d, m - 1 - off, n)
            grad_a = ga.sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            full = torch.fft.irfft(grad_of(a, False), n=size, dim=d)
            start = n - 1 - off
            if start >= 0:
                gb = full.narrow(d, start, m)
            else:  # filter taps at lags beyond +-(N-1) never meet the sequence: zero gradient
                gb = full.narrow(d, 0, m + start).movedim(d, -1)
                gb = torch.nn.functional.pad(gb, (-start, 0)).movedim(-1, d)
            grad_b = gb.sum_to_size(b.shape)
        return grad_a, grad_b, None, None, None, None


def fft_conv(u: Tensor, h: Tensor, causal: bool = True, dim: int = -2) -> Tensor:
    """Per-channel long convolution of a sequence with a filter, by FFT.

    ``y[..., i, d] = sum_{j <= i} h[i - j, d] u[..., j, d]`` (causal), or the bidirectional form of the
    module docstring (``h[m]`` is the weight of lag ``m - (M - 1) // 2``; ``M = 2N - 1`` covers every
    lag).

    Args:
        u: ``[..., N, D]`` (token axis ``dim``, default -2).
        h: ``[N, D]`` causal or ``[M, D]`` bidirectional; more generally any tensor whose axes from
            the token axis on broadcast against ``u``'s (e.g. ``h [N, C, 1]`` for ``u [B, N, C, 3]``
            with ``dim=-3``: one filter per vector channel, shared by x, y, z).
    Returns:
        ``y`` with the broadcast shape of ``u`` and ``h`` (token axis of length N).
    """
    d, n, m = _check_pair("u", u, "h", h, dim, causal, vector=False)
    if n == 0 or u.numel() == 0 or h.numel() == 0:
        return _empty_result(u, h, d, None)
    ct = _compute_dtype(u)
    return _SpectralConv.apply(u.to(ct), h.to(ct), "mul", causal, d).to(u.dtype)


def fft_cross_conv(q: Tensor, k: Tensor, causal: bool = True, dim: int = -2, vector_dim: int = -1) -> Tensor:
    """Cross-product long convolution ``y[..., i, :] = sum_{j <= i} q[..., j, :] x k[..., i - j, :]``.

    Computed on components: ``y_c = sum_ab eps_cab (q_a * k_b)`` with ``*`` the scalar convolution,
    combined in the frequency domain (6 rFFTs, 3 inverse). If ``q`` and ``k`` are polar vectors the
    result is a *pseudovector*: ``y(R q, R k) = det(R) R y(q, k)`` (SE(3)-, not E(3)-equivariant).
    Note ``q (x) k = -(k (x) q)`` only up to the lag convention: ``fft_cross_conv(q, k) ==
    -fft_cross_conv(k, q)`` holds in the causal mode.

    Args:
        q: ``[..., N, 3]`` (token axis ``dim``, default -2; e.g. ``dim=-3`` for ``[B, N, C, 3]``).
        k: ``[..., N, 3]`` causal, ``[..., M, 3]`` bidirectional (``k[m]`` at lag ``m - (M-1)//2``).
        vector_dim: the x, y, z axis (negative, after the token axis): -1 for ``[..., N, C, 3]``,
            -2 for channels-last vector features ``[..., N, 3, C]``.
    Returns:
        ``[..., N, 3]`` (broadcast batch shape).
    """
    d, n, m = _check_pair("q", q, "k", k, dim, causal, True, vector_dim)
    v = _vector_axis(d, vector_dim)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None)
    ct = _compute_dtype(q)
    return _SpectralConv.apply(q.to(ct), k.to(ct), "cross", causal, d, v).to(q.dtype)


def fft_dot_conv(q: Tensor, k: Tensor, causal: bool = True, dim: int = -2, vector_dim: int = -1) -> Tensor:
    """Dot-product long convolution ``y[..., i] = sum_{j <= i} <q[..., j, :], k[..., i - j, :]>``.

    The invariant partner of :func:`fft_cross_conv` (same lag convention, same shapes in): a scalar,
    invariant under rotations *and* reflections when ``q`` and ``k`` are both polar (or both pseudo)
    vectors. Computed as ``sum_a Q_a K_a`` in the frequency domain (6 rFFTs, 1 inverse).

    Returns:
        ``[..., N]`` (the vector axis summed out).
    """
    d, n, m = _check_pair("q", q, "k", k, dim, causal, True, vector_dim)
    v = _vector_axis(d, vector_dim)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None).sum(v)
    ct = _compute_dtype(q)
    return _SpectralConv.apply(q.to(ct), k.to(ct), "dot", causal, d, v).to(q.dtype)


def fft_cross_dot_conv(
    q: Tensor, k: Tensor, causal: bool = True, dim: int = -2, vector_dim: int = -1
) -> tuple[Tensor, Tensor]:
    """``(fft_cross_conv(q, k), fft_dot_conv(q, k))`` sharing the 6 forward rFFTs (4 inverse)."""
    d, n, m = _check_pair("q", q, "k", k, dim, causal, True, vector_dim)
    v = _vector_axis(d, vector_dim)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        z = _empty_result(q, k, d, None)
        return z, z.sum(v)
    ct = _compute_dtype(q)
    y = _SpectralConv.apply(q.to(ct), k.to(ct), "crossdot", causal, d, v).to(q.dtype)
    return y.narrow(v, 0, 3), y.select(v, 3)


# ---------------------------------------------------------------------------------------------------
# references: direct O(N * M) sums, obviously right


def _lag_gather(b: Tensor, db: int, n: int, m: int, causal: bool) -> tuple[Tensor, Tensor]:
    """``B[..., i, j, ...] = b[..., i - j + offset, ...]`` (``db`` < 0) and the mask of valid (i, j)."""
    off = _offset(causal, m)
    i = torch.arange(n, device=b.device)[:, None]
    j = torch.arange(n, device=b.device)[None, :]
    idx = i - j + off  # [N, N]
    valid = (idx >= 0) & (idx < m)
    if causal:
        valid = valid & (j <= i)
    gathered = b.index_select(db, idx.clamp(0, max(m - 1, 0)).reshape(-1))
    shape = list(b.shape)
    pos = db % b.dim()
    gathered = gathered.reshape(shape[:pos] + [n, n] + shape[pos + 1 :])  # [..., N(i), N(j), ...]
    return gathered, valid


def _mask_shape(valid: Tensor, ndim_after: int) -> Tensor:
    return valid.reshape(valid.shape + (1,) * ndim_after)


def fft_conv_reference(u: Tensor, h: Tensor, causal: bool = True, dim: int = -2) -> Tensor:
    """Direct sum for :func:`fft_conv`: O(N^2) time and memory."""
    d, n, m = _check_pair("u", u, "h", h, dim, causal, vector=False)
    if n == 0 or u.numel() == 0 or h.numel() == 0:
        return _empty_result(u, h, d, None)
    hij, valid = _lag_gather(h, d, n, m, causal)  # [..., N(i), N(j), ...]
    after = -d - 1
    terms = hij * u.unsqueeze(d - 1) * _mask_shape(valid, after).to(u.dtype)  # [..., N(i), N(j), ...]
    return terms.sum(d)


def fft_cross_conv_reference(
    q: Tensor, k: Tensor, causal: bool = True, dim: int = -2, vector_dim: int = -1
) -> Tensor:
    """Direct sum for :func:`fft_cross_conv` with ``torch.linalg.cross``: O(N^2)."""
    _check_pair("q", q, "k", k, dim, causal, True, vector_dim)
    if vector_dim != -1:
        _vector_axis(dim % q.dim() - q.dim(), vector_dim)
        y = fft_cross_conv_reference(q.movedim(vector_dim, -1), k.movedim(vector_dim, -1), causal, dim)
        return y.movedim(-1, vector_dim)
    d, n, m = _check_pair("q", q, "k", k, dim, causal, vector=True)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None)
    kij, valid = _lag_gather(k, d, n, m, causal)  # [..., N(i), N(j), ..., 3]
    qj = q.unsqueeze(d - 1)  # [..., 1, N(j), ..., 3]
    qj, kij = torch.broadcast_tensors(qj, kij)
    terms = torch.linalg.cross(qj, kij, dim=-1)
    terms = terms * _mask_shape(valid, -d - 1).to(q.dtype)
    return terms.sum(d)


def fft_dot_conv_reference(
    q: Tensor, k: Tensor, causal: bool = True, dim: int = -2, vector_dim: int = -1
) -> Tensor:
    """Direct sum for :func:`fft_dot_conv`: O(N^2)."""
    _check_pair("q", q, "k", k, dim, causal, True, vector_dim)
    if vector_dim != -1:
        _vector_axis(dim % q.dim() - q.dim(), vector_dim)
        return fft_dot_conv_reference(q.movedim(vector_dim, -1), k.movedim(vector_dim, -1), causal, dim)
    d, n, m = _check_pair("q", q, "k", k, dim, causal, vector=True)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None).sum(-1)
    kij, valid = _lag_gather(k, d, n, m, causal)
    terms = (q.unsqueeze(d - 1) * kij).sum(-1)  # [..., N(i), N(j), ...] (vector axis summed)
    terms = terms * _mask_shape(valid, -d - 2).to(q.dtype)
    return terms.sum(d + 1)
