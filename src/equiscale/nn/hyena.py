"""SE(3)-Hyena: an equivariant long-convolution operator over a sequence of scalar and vector tokens.

Tokens carry invariant scalars ``s [..., N, Cs]`` and vector features ``v [..., N, 3, Cv]`` (x, y, z
then ``Cv`` channels: channels last, like ``[..., (L+1)^2, C]``). One :class:`SE3HyenaOperator`
does, per token ``i`` (all sums over tokens are FFT long convolutions, O(N log N)):

1. **Projections.** Invariants ``inv = [s, <v_c, (W_d v)_c>]``; scalars ``(s_q, s_k, s_v) = Lin(inv)``;
   gates ``(g_q, g_k) = Lin(inv)``; vectors ``(v_q, v_k, v_v[, v_r]) = v W`` mixed only over channels
   (a real matrix, no bias: ``(R v) W = R (v W)``).
2. **Short convolution.** Depthwise, kernel 3 along the tokens, on every projection (one weight per
   channel, shared by x, y, z), causal or centred.
3. **Global context, Hyena order 2** (``y = x0 * (h ⊛ (x1 * v))`` with a skip ``D``):

   - scalar stream ``a = h_s ⊛ (s_k * s_v) + D_s (s_k * s_v)``, ``s_1 = s_q * a``;
   - vector stream ``z = h_v ⊛ (g_k * v_v) + D_v (g_k * v_v)``, ``v_1 = g_q * z``: invariant gates
     multiply vectors, so a zero gate really removes the token (tested);
   - geometric long convolution between the query and key sequences (SE(3)-Hyena):
     ``c = (v_q ⊛x v_k) / count`` (cross product, :func:`~equiscale.ops.fft_cross_conv`) and
     ``e = (v_q ⊛. v_k) / count`` (dot product, :func:`~equiscale.ops.fft_dot_conv`), ``count`` the
     number of terms in each output;
   - local geometric products with the context: ``<v_q, z>`` (invariant) and ``v_q x z``;
   - a *normalised* long convolution (our addition): ``m = (h+ ⊛ (w v_v)) / (h+ ⊛ w)`` with
     positive token weights ``w = exp(10 tanh(g_w / 10))`` and a positive implicit filter
     ``h+ = softplus(h_a)``: a convex combination of value vectors (linear attention with token-wise
     logits and a positional kernel). It can broadcast one token's vector exactly, which gated sums
     cannot (their magnitude depends on how many tokens they sum); ``<v_q, m>`` joins the scalars.
   ``h_s, h_v`` are implicit filters (:class:`ImplicitFilter`).
4. **Output projection.** ``s_out = Lin([s_1, e, <v_q, z>, <v_q, m>])``;
   ``v_out = [v_1, c', (v_q x z)', m] W_o``
   (channel mixing, no bias).

**E(3) vs SE(3).** A cross product of two polar vectors is a *pseudovector*: under an improper
rotation ``R`` (det -1) it transforms as ``det(R) R c``. With ``parity="se3"`` (default) the
pseudovectors ``c`` and ``v_q x z`` are mixed with polar vectors as in SE(3)-Hyena: exactly
equivariant under rotations and translations, *not* under reflections. With ``parity="e3"`` each
pseudovector ``p`` is first crossed with one more polar projection ``v_r`` of the token,
``p' = v_r x p`` (pseudo x polar = polar), which restores parity: the operator is then
E(3)-equivariant (rotations, reflections, translations), tested. Dot products of two polar vectors
are true scalars, so the scalar stream is E(3)-invariant in both modes.

**Length.** The implicit filters are functions of the *relative* lag ``t / N``. With
``length_norm=True`` the two summing long convolutions are divided by ``N``
(``a = (1/N) h_s ⊛ x_s + ...``, likewise ``z``): each becomes a Riemann sum of one kernel on
``[-1, 1]``, so the operator computes the same function of the sequence's shape at any ``N``
(the cross/dot convolutions and ``m`` are already averages). Without it the sums grow with ``N``
and a model trained at one length fails at another: recall trained at length 128 without it
reaches 91% there and 8% at 1024; with it 100% at 128, 69% at 1024 zero-shot, and after fine-tuning
at 1024, 99.7% from 256 to 2048 tokens (``results/recall_vs_length.json``). It also trains faster
(99% validation accuracy after 2 epochs instead of 91% after 11). Standard Hyena does not
normalise, so the default is ``False``.

**Order.** This is a sequence operator: tokens are *not* permutation-equivariant, and not even
cyclic-shift-equivariant (the convolutions are linear, zero-padded, never circular; the implicit
filters depend on the lag relative to ``N``). What holds exactly: with ``causal=True`` the output at
token ``i`` depends only on tokens ``j <= i`` (tested by perturbing later tokens); with
``causal=False`` every output sees every token (filters cover lags ``-(N-1) .. N-1``).

**Floating point.** Causality is exact in exact arithmetic; an FFT's rounding error is relative
to the largest value of the whole padded sequence, so in floating point an outlier token leaks
into earlier outputs by about eps times its size (the invariants ``<v, W v>`` are quadratic in
``v``: scaling the last token's vectors by 1e3 moved earlier float32 scalar outputs of a
256-token operator by ~1e4, float64 ones by ~1e-5), and one NaN or inf token makes every output
NaN. Keep inputs normalised, or run in float64 where strict causality matters. The normalised
convolution ``m`` always runs its FFTs in float64 (its weights span e^20): per-token float32
error against float64 < 1e-4 at 256 tokens and < 5e-3 at 64k tokens with the gate logits over
their whole range (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from equiscale.distributed.long_conv import (
    shard_bounds,
    sharded_fft_conv,
    sharded_fft_cross_dot_conv,
)
from equiscale.distributed.shard import Shard, all_reduce_max, fetch_windows
from equiscale.ops.long_conv import fft_conv, fft_cross_dot_conv

__all__ = [
    "ImplicitFilter",
    "ShortConv",
    "VectorLinear",
    "VectorRMSNorm",
    "SE3HyenaOperator",
    "SE3HyenaBlock",
    "HyenaOperator",
]

PARITIES = ("se3", "e3")
_LOGIT_BOUND = 10.0  # logits of the normalised convolution lie in [-10, 10]
#: from this many tokens on, filters and projections are recomputed in backward instead of stored
#: (memory matters for long sequences; for short ones the recomputation is pure overhead)
RECOMPUTE_MIN_TOKENS = 1024


class Sine(nn.Module):
    """``sin(w x)`` with a learnable frequency per feature (Hyena's filter activation)."""

    def __init__(self, features: int, w: float = 1.0) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.full((features,), float(w)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.freq * x)


class ImplicitFilter(nn.Module):
    """Implicit long filter ``h[t, c] = MLP(PE(t / N))[c] * exp(-alpha_c |t| / N)``.

    ``PE(x) = [x, cos(2 pi f x), sin(2 pi f x)]`` for ``bands`` frequencies ``f = 0 .. bands-1``; the MLP
    has sine activations; ``alpha_c`` spreads the decay rates over channels from fast (the window falls
    to ``target`` at ``fast_decay`` of the sequence) to slow (at ``slow_decay`` of it). The lag ``t``
    runs over ``0 .. N-1`` (``causal=True``, output ``[N, C]``) or ``-(N-1) .. N-1`` (``[2N-1, C]``,
    centre = lag 0), as :func:`~equiscale.ops.fft_conv` expects. Cost O(N * hidden * C).
    """

    freqs: Tensor
    alpha: Tensor

    def __init__(
        self,
        channels: int,
        *,
        causal: bool = True,
        bands: int = 8,
        hidden: int = 32,
        depth: int = 2,
        w: float = 1.0,
        fast_decay: float = 0.3,
        slow_decay: float = 1.5,
        target: float = 1e-2,
    ) -> None:
        super().__init__()
        if channels < 1 or bands < 1 or hidden < 1 or depth < 1:
            raise ValueError(
                f"channels, bands, hidden, depth must be >= 1, got {channels}, {bands}, {hidden}, {depth}"
            )
        self.channels = channels
        self.causal = causal
        self.register_buffer("freqs", torch.arange(bands, dtype=torch.float32), persistent=False)
        layers: list[nn.Module] = [nn.Linear(1 + 2 * bands, hidden), Sine(hidden, w)]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), Sine(hidden, w)]
        layers.append(nn.Linear(hidden, channels))
        self.mlp = nn.Sequential(*layers)
        alpha = torch.linspace(math.log(1 / target) / fast_decay, math.log(1 / target) / slow_decay, channels)
        self.register_buffer("alpha", alpha, persistent=False)
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def forward(self, n: int, rows: tuple[int, int] | None = None) -> Tensor:
        """The filter ``[N, C]`` (causal) or ``[2N - 1, C]`` (bidirectional), in the module's dtype;
        with ``rows = (lo, hi)`` only its rows ``lo .. hi-1`` (each rank of a context-parallel run
        makes its own block of the filter)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        m = n if self.causal else max(2 * n - 1, 0)
        lo, hi = (0, m) if rows is None else rows
        if not 0 <= lo <= hi <= m:
            raise ValueError(f"rows must satisfy 0 <= lo <= hi <= {m}, got {rows}")
        pe, x = self._encoding(n, lo, hi)
        if (
            n >= RECOMPUTE_MIN_TOKENS
            and torch.is_grad_enabled()
            and any(p.requires_grad for p in self.parameters())
        ):
            # the MLP's hidden activations ([M, hidden] per layer) would dominate memory at long N
            # for small batches; recomputing them in backward is cheap
            return checkpoint(self._shape, pe, x, use_reentrant=False)
        return self._shape(pe, x)

    def _encoding(self, n: int, lo: int, hi: int) -> tuple[Tensor, Tensor]:
        """``(PE [M, 1 + 2 bands], t / N [M])`` for rows ``lo .. hi-1``, cached for the last few
        ``(n, lo, hi)`` (no parameters)."""
        weight = cast(Tensor, self.mlp[0].weight)  # the first Linear's
        dtype, device = weight.dtype, weight.device
        key = (n, lo, hi, dtype, device)
        if key not in self._cache:
            with torch.no_grad():
                first = 0 if self.causal else -max(n - 1, 0)
                lags = torch.arange(first + lo, first + hi, device=device, dtype=dtype)
                x = lags / max(n, 1)  # [M]
                angle = 2 * math.pi * x[:, None] * self.freqs.to(dtype)  # [M, bands]
                pe = torch.cat([x[:, None], torch.cos(angle), torch.sin(angle)], dim=-1)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (pe, x)
        return self._cache[key]

    def _shape(self, pe: Tensor, x: Tensor) -> Tensor:
        window = torch.exp(-x.abs()[:, None] * self.alpha.to(x.dtype))  # [M, C]
        return self.mlp(pe) * window


class ShortConv(nn.Module):
    """Depthwise convolution along tokens, kernel ``k``: ``y_i = sum_t w[t, c] x_{i - t + o}``.

    ``o = 0`` (causal: taps ``i, i-1, ..., i-k+1``) or ``o = k // 2`` (centred). ``x`` is
    ``[..., N, *rest, C]`` with the token axis ``dim`` and channels last; the weight of channel ``c``
    is shared by the axes in between (for vector features ``[..., N, 3, C]``: x, y, z alike, so it is
    equivariant).
    """

    def __init__(self, channels: int, kernel: int = 3, causal: bool = True) -> None:
        super().__init__()
        if kernel < 1:
            raise ValueError(f"kernel must be >= 1, got {kernel}")
        self.kernel = kernel
        self.causal = causal
        w = torch.zeros(kernel, channels)
        w[0 if causal else kernel // 2] = 1.0  # starts as the identity
        self.weight = nn.Parameter(w + 0.1 * torch.randn(kernel, channels) / math.sqrt(kernel))

    def forward(self, x: Tensor, dim: int = -2, shard: Shard | None = None) -> Tensor:
        """``shard``: ``x`` is this rank's block of a sequence split over ranks; the ``k - 1`` halo
        tokens next to the block come from the neighbouring ranks (zero beyond the sequence)."""
        n = x.shape[dim]
        k = self.kernel
        left = k - 1 if self.causal else k // 2
        right = k - 1 - left
        if shard is not None:
            starts = shard.starts
            ends = [s + m for s, m in zip(starts, shard.sizes)]
            parts = [fetch_windows(x, dim, shard, [(s - left, s) for s in starts]), x]
            if right:
                parts.append(fetch_windows(x, dim, shard, [(e, e + right) for e in ends]))
        else:
            pad_shape = list(x.shape)
            pad_shape[dim] = left
            parts = [x.new_zeros(pad_shape), x]
            if right:
                pad_shape[dim] = right
                parts.append(x.new_zeros(pad_shape))
        xp = torch.cat(parts, dim=dim)  # [..., N + k - 1, ..., C]
        w = self.weight.to(x.dtype)  # [k, C], broadcast over the trailing channel axis
        offset = 0 if self.causal else k // 2
        y = w[0] * xp.narrow(dim, offset + left, n)
        for t in range(1, k):  # tap t reads x_{i - t + offset}, which sits at i - t + offset + left
            y = y + w[t] * xp.narrow(dim, offset + left - t, n)
        return y


class VectorLinear(nn.Module):
    """Channel mixing of vector features ``[..., 3, C_in] -> [..., 3, C_out]``: ``y_o = sum_c v_c W[c, o]``.

    No bias (a bias vector would pick a direction), so ``VectorLinear(R v) = R VectorLinear(v)`` for
    every orthogonal ``R``. Channels last, so this is one matrix product without copies.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_in, c_out) / math.sqrt(max(c_in, 1)))

    def forward(self, v: Tensor) -> Tensor:
        if v.dim() < 2 or v.shape[-2:] != (3, self.weight.shape[0]):
            raise ValueError(f"v must be [..., 3, {self.weight.shape[0]}], got shape {tuple(v.shape)}")
        return torch.matmul(v, self.weight)  # [..., 3, C_in] @ [C_in, C_out]


class VectorRMSNorm(nn.Module):
    """``v_c / sqrt(mean_c |v_c|^2 + eps) * gamma_c`` on ``[..., 3, C]``: an equivariant norm.

    ``eps`` (0.1) bounds the gain on near-zero vectors to ``eps^-1/2`` ~ 3. The first token of a
    causal sequence has a centred position of exactly 0, so its vector features are FFT rounding
    noise; with ``eps = 1e-3`` (gain 31 per norm) that noise compounded to a 1.5e-7 relative
    equivariance error at depth 4, with 0.1 it stays ~1e-14 (measured, float64, 64 tokens).
    """

    def __init__(self, channels: int, eps: float = 0.1) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, v: Tensor) -> Tensor:
        ms = v.pow(2).sum(-2).mean(-1, keepdim=True)  # [..., 1]
        return v * (torch.rsqrt(ms + self.eps)[..., None] * self.gamma)  # [..., 3, C]


def _check_streams(s: Tensor, v: Tensor, cs: int, cv: int) -> None:
    if s.shape[-1] != cs:
        raise ValueError(f"scalars must be [..., N, {cs}], got shape {tuple(s.shape)}")
    if v.dim() < 3 or v.shape[-2:] != (3, cv):
        raise ValueError(f"vectors must be [..., N, 3, {cv}], got shape {tuple(v.shape)}")
    if s.shape[:-1] != v.shape[:-2]:
        raise ValueError(
            f"scalars {tuple(s.shape)} and vectors {tuple(v.shape)} disagree on the batch and token axes"
        )


def _term_count(
    n: int, causal: bool, device: torch.device, dtype: torch.dtype, start: int = 0, stop: int | None = None
) -> Tensor:
    """Number of (j, i - j) pairs summed at output i by a data-data convolution of two length-N
    sequences: ``i + 1`` (causal) or the 'same'-mode count (bidirectional), for ``i`` in
    ``[start, stop)`` (default: all ``N``)."""
    i = torch.arange(start, n if stop is None else stop, device=device)
    if causal:
        return (i + 1).to(dtype)
    o = (n - 1) // 2
    hi = torch.clamp(i + o, max=n - 1)
    lo = torch.clamp(i + o - n + 1, min=0)
    return (hi - lo + 1).to(dtype)


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """Cross product on the x, y, z axis -2 of ``[..., 3, C]``."""
    dt = torch.promote_types(a.dtype, b.dtype)  # mixed under autocast (bf16 projections, f32 convs)
    return torch.linalg.cross(a.to(dt), b.to(dt), dim=-2)


class SE3HyenaOperator(nn.Module):
    """The SE(3)-Hyena operator (module docstring): ``(s [..., N, Cs], v [..., N, 3, Cv]) -> same``.

    Vector features are channels-last, ``[..., N, 3, Cv]`` (x, y, z then channels, like the
    library's ``[..., (L+1)^2, C]`` layout), so every channel mixing is a plain matrix product.

    Args:
        scalar_channels, vector_channels: ``Cs``, ``Cv``.
        causal: causal convolutions (token i sees j <= i) or bidirectional ones.
        parity: ``"se3"`` (cross products enter as pseudovectors) or ``"e3"`` (parity restored).
        filter_hidden, filter_bands: size of the implicit filters' MLP and positional encoding.
        short_kernel: kernel of the depthwise short convolution (3).
        length_norm: divide the summing long convolutions by ``N`` (module docstring, Length).
    """

    def __init__(
        self,
        scalar_channels: int,
        vector_channels: int,
        *,
        causal: bool = True,
        parity: str = "se3",
        filter_hidden: int = 32,
        filter_bands: int = 8,
        short_kernel: int = 3,
        length_norm: bool = False,
    ) -> None:
        super().__init__()
        if parity not in PARITIES:
            raise ValueError(f"parity must be one of {PARITIES}, got {parity!r}")
        if scalar_channels < 1 or vector_channels < 1:
            raise ValueError(
                f"scalar_channels and vector_channels must be >= 1, got {scalar_channels}, {vector_channels}"
            )
        cs, cv = scalar_channels, vector_channels
        self.cs, self.cv, self.causal, self.parity = cs, cv, causal, parity
        self.length_norm = length_norm
        n_vec = 4 if parity == "e3" else 3  # v_q, v_k, v_v (+ v_r)
        self.dot_proj = VectorLinear(cv, cv)
        self.scalar_in = nn.Linear(cs + cv, 3 * cs)
        self.gate_in = nn.Linear(cs + cv, 3 * cv)
        self.vector_in = VectorLinear(cv, n_vec * cv)
        self.short_s = ShortConv(3 * cs, short_kernel, causal)
        self.short_v = ShortConv(n_vec * cv, short_kernel, causal)
        self.filter_s = ImplicitFilter(cs, causal=causal, hidden=filter_hidden, bands=filter_bands)
        self.filter_v = ImplicitFilter(cv, causal=causal, hidden=filter_hidden, bands=filter_bands)
        self.filter_a = ImplicitFilter(cv, causal=causal, hidden=filter_hidden, bands=filter_bands)
        self.skip_s = nn.Parameter(torch.randn(cs))
        self.skip_v = nn.Parameter(torch.randn(cv))
        self.scalar_out = nn.Linear(cs + 3 * cv, cs)
        self.vector_out = VectorLinear(4 * cv, cv)

    def _project(self, inv: Tensor, v: Tensor, shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        """Projections and short convolutions: ``[..., N, 3 Cs]`` and ``[..., N, 3, n_vec Cv]``."""
        return (
            self.short_s(self.scalar_in(inv), shard=shard),
            self.short_v(self.vector_in(v), dim=-3, shard=shard),
        )

    def forward(self, s: Tensor, v: Tensor, shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        """``shard`` (context parallelism): ``s``, ``v`` hold this rank's block of the tokens of a
        sequence split over the ranks of ``shard.group`` (:class:`~equiscale.distributed.Shard`);
        the result is this rank's block of the single-process result. Every global operation runs
        across the ranks: the long convolutions (:mod:`equiscale.distributed.long_conv`), the short
        convolutions' halos, the normalised convolution's shift, the filters' length ``N``, the
        term counts. Each rank makes one block of the filters' rows (``shard_bounds(M, P)``), so
        the filters are split like the tokens; parameter gradients are each rank's share, to be
        summed over the ranks (as DDP does).
        """
        _check_streams(s, v, self.cs, self.cv)
        n = s.shape[-2] if shard is None else shard.total
        cs, cv = self.cs, self.cv
        conv: Callable[..., Tensor]
        cross_dot: Callable[..., tuple[Tensor, Tensor]]
        if shard is None:
            conv, cross_dot = fft_conv, fft_cross_dot_conv
            rows = None
        else:
            # each rank makes its block of the filters' rows and the convolution fetches the lags
            # it needs from their owners, so no rank holds a whole [M, C] filter
            n_rows = n if self.causal else max(2 * n - 1, 0)
            rows = shard_bounds(n_rows, shard.world)[shard.rank]
            group = shard.group

            def sharded_conv(x: Tensor, h: Tensor, causal: bool, dim: int = -2) -> Tensor:
                return sharded_fft_conv(x, h, causal, dim, h_sharded=True, group=group)

            def sharded_cross_dot(
                q: Tensor, k: Tensor, causal: bool, dim: int, vector_dim: int
            ) -> tuple[Tensor, Tensor]:
                return sharded_fft_cross_dot_conv(q, k, causal, dim, vector_dim, group=group)

            conv, cross_dot = sharded_conv, sharded_cross_dot
        # 1. projections (+ short convolutions, recomputed in backward: they are cheap and their
        #    padded inputs would otherwise be stored)
        inv = torch.cat([s, (v * self.dot_proj(v)).sum(-2)], dim=-1)  # [..., N, Cs + Cv]
        if n >= RECOMPUTE_MIN_TOKENS and torch.is_grad_enabled():
            sp, vp = checkpoint(self._project, inv, v, shard, use_reentrant=False)
        else:
            sp, vp = self._project(inv, v, shard)
        s_q, s_k, s_v = sp.split(cs, dim=-1)  # 3 x [..., N, Cs]
        v_q, v_k, v_v = vp[..., :cv], vp[..., cv : 2 * cv], vp[..., 2 * cv : 3 * cv]  # [..., N, 3, Cv]
        g_q, g_k, g_w = self.gate_in(inv).unsqueeze(-2).split(cv, dim=-1)  # 3 x [..., N, 1, Cv]
        # 2. global context: implicit-filter long convolutions (Hyena order 2 with skip)
        scale = 1.0 / max(n, 1) if self.length_norm else 1.0
        x_s = s_k * s_v  # [..., N, Cs]
        a = conv(x_s, scale * self.filter_s(n, rows), self.causal) + self.skip_s * x_s
        s_1 = s_q * a
        x_v = g_k * v_v  # [..., N, 3, Cv], invariant gate times vector
        z = conv(x_v, scale * self.filter_v(n, rows)[:, None, :], self.causal, dim=-3)
        z = z + self.skip_v * x_v
        v_1 = g_q * z  # [..., N, 3, Cv]
        # normalised long convolution: a positional weighted average of the value vectors,
        # m_i = sum_j h+_{i-j} w_j v_j / sum_j h+_{i-j} w_j with w_j = exp(B tanh(g_w,j / B)) > 0
        # and h+ = softplus(filter) > 0 (a convex combination: linear attention with token-wise
        # logits and a positional kernel; it lets one token's vector be broadcast exactly)
        # Stable by construction: (i) the logits are shifted by their maximum over the tokens
        # (per sequence and channel; the shift cancels in the ratio), so weights lie in
        # [e^-2B, 1] and never overflow; (ii) below float64 the FFTs of this one convolution run in
        # float64: an FFT's error is relative to the largest input, and the weights span e^2B
        # (~5e8), which float32 (eps 6e-8) cannot resolve: early tokens came out near 1e10 and
        # later tokens leaked into earlier ones. In float64 the error is < ~1e-7 relative.
        work = torch.promote_types(v_v.dtype, torch.float64)
        logits = _LOGIT_BOUND * torch.tanh(g_w.to(work) / _LOGIT_BOUND)  # [..., N, 1, Cv]
        if shard is None:
            shift = logits.amax(dim=-3, keepdim=True).detach() if n else 0.0
        else:  # one shift for the whole sequence (it cancels in the ratio only if shared)
            local = (
                logits.amax(dim=-3, keepdim=True).detach()
                if logits.shape[-3]
                else logits.new_full((*logits.shape[:-3], 1, *logits.shape[-2:]), -1e300)
            )
            shift = all_reduce_max(local, shard)
        w = torch.exp(logits - shift)  # (0, 1]
        h_a = torch.nn.functional.softplus(self.filter_a(n, rows).to(work))  # [M, Cv]
        nd = conv(torch.cat([w * v_v.to(work), w], dim=-2), h_a[:, None, :], self.causal, dim=-3)
        m = (nd[..., :3, :] / nd[..., 3:, :].clamp_min(torch.finfo(work).tiny)).to(v_v.dtype)
        # 3. geometric long convolution of queries with keys (averaged over the summed pairs)
        span = (0, n) if shard is None else (shard.start, shard.stop)
        count = _term_count(n, self.causal, s.device, s.dtype, *span)  # [N]
        c, e = cross_dot(v_q, v_k, self.causal, dim=-3, vector_dim=-2)
        c = c / count[:, None, None]  # [..., N, 3, Cv] pseudovector
        e = e / count[:, None]  # [..., N, Cv] invariant
        qz_dot = (v_q * z).sum(-2)  # [..., N, Cv]
        qm_dot = (v_q * m).sum(-2)  # [..., N, Cv]
        qz_cross = _cross(v_q, z)  # pseudovector
        if self.parity == "e3":
            v_r = vp[..., 3 * cv :]
            c = _cross(v_r, c)  # polar x pseudo = polar
            qz_cross = _cross(v_r, qz_cross)
        # 4. output projections
        s_out = self.scalar_out(torch.cat([s_1, e, qz_dot, qm_dot], dim=-1))
        v_out = self.vector_out(torch.cat([v_1, c, qz_cross, m], dim=-1))
        return s_out, v_out


class SE3HyenaBlock(nn.Module):
    """Pre-norm residual block: ``x + Op(Norm(x))`` then ``x + GatedMLP(Norm(x))``.

    ``Op`` is an :class:`SE3HyenaOperator` built from ``operator_args``, or any equivariant token
    mixer ``(s, v) -> (s, v)`` passed as ``mixer`` (the equivariant transformer passes its attention,
    so both networks share everything but the mixer). ``checkpoint_mixer=True`` recomputes the
    mixer in backward instead of storing its intermediates (activation checkpointing, as safari's
    ``checkpoint_mixer``): less memory, about one more mixer forward of time.
    The gated MLP: ``h = SiLU(Lin([s, |v_c|]))``; ``s += Lin(h)``; ``v += sigma(Lin(h)) * (v W)``
    (invariant gates on a channel mix). Norms: LayerNorm on scalars, :class:`VectorRMSNorm` on vectors.
    """

    def __init__(
        self,
        scalar_channels: int,
        vector_channels: int,
        *,
        mlp_ratio: int = 2,
        mixer: nn.Module | None = None,
        checkpoint_mixer: bool = False,
        **operator_args: object,
    ) -> None:
        super().__init__()
        self.checkpoint_mixer = checkpoint_mixer
        cs, cv = scalar_channels, vector_channels
        if mixer is not None and operator_args:
            raise TypeError(f"pass either mixer or operator arguments, got both ({sorted(operator_args)})")
        self.norm_s1 = nn.LayerNorm(cs)
        self.norm_v1 = VectorRMSNorm(cv)
        if mixer is None:
            mixer = SE3HyenaOperator(cs, cv, **operator_args)  # type: ignore[arg-type]
        self.op = mixer
        self.norm_s2 = nn.LayerNorm(cs)
        self.norm_v2 = VectorRMSNorm(cv)
        hidden = mlp_ratio * cs
        self.mlp_in = nn.Linear(cs + cv, hidden)
        self.mlp_s = nn.Linear(hidden, cs)
        self.mlp_g = nn.Linear(hidden, cv)
        self.mlp_v = VectorLinear(cv, cv)

    def forward(self, s: Tensor, v: Tensor, shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        """``shard``: context parallelism (see :meth:`SE3HyenaOperator.forward`); everything else in
        the block acts token by token."""
        sn, vn = self.norm_s1(s), self.norm_v1(v)
        kw: dict[str, Any] = {} if shard is None else {"shard": shard}
        if self.checkpoint_mixer and torch.is_grad_enabled():
            ds, dv = checkpoint(self.op, sn, vn, use_reentrant=False, **kw)
        else:
            ds, dv = self.op(sn, vn, **kw)
        s, v = s + ds, v + dv
        sn, vn = self.norm_s2(s), self.norm_v2(v)
        norms = torch.sqrt(vn.pow(2).sum(-2) + 1e-8)  # [..., N, Cv]
        h = torch.nn.functional.silu(self.mlp_in(torch.cat([sn, norms], dim=-1)))
        s = s + self.mlp_s(h)
        v = v + torch.sigmoid(self.mlp_g(h)).unsqueeze(-2) * self.mlp_v(vn)
        return s, v


class HyenaOperator(nn.Module):
    """The plain (non-equivariant) Hyena operator of order 2 on ``x [..., N, D]``.

    ``(q, k, v) = ShortConv(Lin(x))``; ``y = Lin(q * (h ⊛ (k * v) + D * (k * v)))`` with an implicit
    filter ``h`` (Poli et al. 2023). The baseline for SE(3)-Hyena: vectors enter as 3 numbers each.
    """

    def __init__(
        self,
        width: int,
        *,
        causal: bool = True,
        filter_hidden: int = 32,
        filter_bands: int = 8,
        short_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.width = width
        self.causal = causal
        self.proj_in = nn.Linear(width, 3 * width)
        self.short = ShortConv(3 * width, short_kernel, causal)
        self.filter = ImplicitFilter(width, causal=causal, hidden=filter_hidden, bands=filter_bands)
        self.skip = nn.Parameter(torch.randn(width))
        self.proj_out = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.width:
            raise ValueError(f"x must be [..., N, {self.width}], got shape {tuple(x.shape)}")
        q, k, v = self.short(self.proj_in(x)).split(self.width, dim=-1)
        kv = k * v
        y = fft_conv(kv, self.filter(x.shape[-2]), self.causal) + self.skip * kv
        return self.proj_out(q * y)
