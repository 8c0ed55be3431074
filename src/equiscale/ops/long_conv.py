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
and 3 inverse real FFTs; the dot product needs 6 forward and 1 inverse.

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


def _check_pair(name_a: str, a: Tensor, name_b: str, b: Tensor, dim: int, causal: bool,
                vector: bool) -> tuple[int, int, int]:
    """Validate shapes; return (token axis as a negative index, N, M)."""
    for name, x in ((name_a, a), (name_b, b)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not (x.is_floating_point()):
            raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have a token axis and a channel axis, got shape "
                             f"{tuple(x.shape)}")
        if vector and x.shape[-1] != 3:
            raise ValueError(f"{name} must end in a vector axis of size 3, got shape {tuple(x.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must share a dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on one device, got {a.device} and {b.device}")
    if not -a.dim() <= dim < a.dim() or dim in (-1, a.dim() - 1):
        raise ValueError(f"dim must index a token axis of {name_a} (not the last), got {dim} for "
                         f"shape {tuple(a.shape)}")
    d = dim % a.dim() - a.dim()  # negative: the same axis of a, b and any broadcast result
    n = a.shape[d]
    db = d
    if b.dim() < -d:
        raise ValueError(f"{name_b} with shape {tuple(b.shape)} has no axis matching token axis {dim} "
                         f"of {name_a} with shape {tuple(a.shape)}")
    m = b.shape[db]
    if causal and m != n:
        raise ValueError(f"causal convolution needs {name_b} of length N={n} along the token axis, "
                         f"got {m} (shape {tuple(b.shape)})")
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


def _offset(causal: bool, m: int) -> int:
    return 0 if causal else (m - 1) // 2


def _spectra(a: Tensor, b: Tensor, d: int, n: int, m: int) -> tuple[Tensor, Tensor, int]:
    size = next_fast_size(n + m - 1)
    ct = _compute_dtype(a)
    fa = torch.fft.rfft(a.to(ct), n=size, dim=d)
    fb = torch.fft.rfft(b.to(ct), n=size, dim=d)
    return fa, fb, size


def _crop(y: Tensor, d: int, start: int, n: int) -> Tensor:
    return y.narrow(d, start, n)


# ---------------------------------------------------------------------------------------------------
# fast paths


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
    fu, fh, size = _spectra(u, h, d, n, m)
    y = torch.fft.irfft(fu * fh, n=size, dim=d)
    return _crop(y, d, _offset(causal, m), n).to(u.dtype)


def _cross_spectra(fq: Tensor, fk: Tensor) -> Tensor:
    """``Y_c = sum_ab eps_cab Q_a K_b`` on the last axis (size 3) of two complex spectra."""
    q0, q1, q2 = fq.unbind(-1)
    k0, k1, k2 = fk.unbind(-1)
    return torch.stack((q1 * k2 - q2 * k1, q2 * k0 - q0 * k2, q0 * k1 - q1 * k0), dim=-1)


def fft_cross_conv(q: Tensor, k: Tensor, causal: bool = True, dim: int = -2) -> Tensor:
    """Cross-product long convolution ``y[..., i, :] = sum_{j <= i} q[..., j, :] x k[..., i - j, :]``.

    Computed on components: ``y_c = sum_ab eps_cab (q_a * k_b)`` with ``*`` the scalar convolution,
    combined in the frequency domain (6 rFFTs, 3 inverse). If ``q`` and ``k`` are polar vectors the
    result is a *pseudovector*: ``y(R q, R k) = det(R) R y(q, k)`` (SE(3)-, not E(3)-equivariant).
    Note ``q (x) k = -(k (x) q)`` only up to the lag convention: ``fft_cross_conv(q, k) ==
    -fft_cross_conv(k, q)`` holds in the causal mode.

    Args:
        q: ``[..., N, 3]`` (token axis ``dim``, default -2; e.g. ``dim=-3`` for ``[B, N, C, 3]``).
        k: ``[..., N, 3]`` causal, ``[..., M, 3]`` bidirectional (``k[m]`` at lag ``m - (M-1)//2``).
    Returns:
        ``[..., N, 3]`` (broadcast batch shape).
    """
    d, n, m = _check_pair("q", q, "k", k, dim, causal, vector=True)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None)
    fq, fk, size = _spectra(q, k, d, n, m)
    y = torch.fft.irfft(_cross_spectra(fq, fk), n=size, dim=d)
    return _crop(y, d, _offset(causal, m), n).to(q.dtype)


def fft_dot_conv(q: Tensor, k: Tensor, causal: bool = True, dim: int = -2) -> Tensor:
    """Dot-product long convolution ``y[..., i] = sum_{j <= i} <q[..., j, :], k[..., i - j, :]>``.

    The invariant partner of :func:`fft_cross_conv` (same lag convention, same shapes in): a scalar,
    invariant under rotations *and* reflections when ``q`` and ``k`` are both polar (or both pseudo)
    vectors. Computed as ``sum_a Q_a K_a`` in the frequency domain (6 rFFTs, 1 inverse).

    Returns:
        ``[..., N]`` (the vector axis summed out).
    """
    d, n, m = _check_pair("q", q, "k", k, dim, causal, vector=True)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None).sum(-1)
    fq, fk, size = _spectra(q, k, d, n, m)
    y = torch.fft.irfft((fq * fk).sum(-1), n=size, dim=d + 1)  # vector axis gone: token axis d + 1
    return _crop(y, d + 1, _offset(causal, m), n).to(q.dtype)


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
    gathered = gathered.reshape(shape[:pos] + [n, n] + shape[pos + 1:])  # [..., N(i), N(j), ...]
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


def fft_cross_conv_reference(q: Tensor, k: Tensor, causal: bool = True, dim: int = -2) -> Tensor:
    """Direct sum for :func:`fft_cross_conv` with ``torch.linalg.cross``: O(N^2)."""
    d, n, m = _check_pair("q", q, "k", k, dim, causal, vector=True)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None)
    kij, valid = _lag_gather(k, d, n, m, causal)  # [..., N(i), N(j), ..., 3]
    qj = q.unsqueeze(d - 1)  # [..., 1, N(j), ..., 3]
    qj, kij = torch.broadcast_tensors(qj, kij)
    terms = torch.linalg.cross(qj, kij, dim=-1)
    terms = terms * _mask_shape(valid, -d - 1).to(q.dtype)
    return terms.sum(d)


def fft_dot_conv_reference(q: Tensor, k: Tensor, causal: bool = True, dim: int = -2) -> Tensor:
    """Direct sum for :func:`fft_dot_conv`: O(N^2)."""
    d, n, m = _check_pair("q", q, "k", k, dim, causal, vector=True)
    if n == 0 or q.numel() == 0 or k.numel() == 0:
        return _empty_result(q, k, d, None).sum(-1)
    kij, valid = _lag_gather(k, d, n, m, causal)
    terms = (q.unsqueeze(d - 1) * kij).sum(-1)  # [..., N(i), N(j), ...] (vector axis summed)
    terms = terms * _mask_shape(valid, -d - 2).to(q.dtype)
    return terms.sum(d + 1)
