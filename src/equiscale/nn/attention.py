"""Equivariant multi-head self-attention over scalar and vector tokens, on PyTorch's SDPA kernels.

For tokens with scalars ``s [..., N, Cs]`` and vector features ``v [..., N, 3, Cv]`` (channels last),
head ``h`` takes
``Cs/H`` scalar and ``Cv/H`` vector channels of the projections ``(q_s, k_s, w_s) = Lin(s)`` and
``(q_v, k_v, w_v) = v W`` (channel mixing, no bias) and computes

    a_ij = softmax_j( (<q_s,i, k_s,j> + sum_c <q_v,i,c, k_v,j,c>) / sqrt(d) )     invariant
    s'_i = sum_j a_ij w_s,j ,    v'_i,c = sum_j a_ij w_v,j,c                    invariant / equivariant

The logits are sums of dot products, invariant under every orthogonal ``R`` (rotations and
reflections), and the values are weighted sums of vectors, so the layer is E(3)-equivariant
(translations: feed centred positions). Without a causal mask and without positional encodings it is
also permutation-equivariant. Implementation: the vector channels are flattened next to the scalar
ones, ``q = [q_s, vec(q_v)]`` with head dimension ``d = Cs/H + 3 Cv/H`` (the flattened dot product *is*
the sum of vector dot products), and one call to ``torch.nn.functional.scaled_dot_product_attention``
does the rest, so the layer gets the flash / memory-efficient kernels of the platform.

**Order.** ``rope=True`` applies rotary position embeddings (Su et al., RoFormer) to the scalar
queries and keys of each head: pairs of channels ``(x_a, x_{a+d/2})`` at token ``i`` are rotated by
the angle ``i * base^(-2a/d)``, so ``<q_s,i, k_s,j>`` depends on the positions only through ``i - j``.
They act on invariant scalars, so the layer stays E(3)-equivariant; it is then order-aware (no longer
permutation-equivariant), as a sequence model for recall must be.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from equiscale.nn.hyena import VectorLinear

__all__ = ["EquivariantAttention", "equivariant_attention_reference", "rotary_embedding"]


def rotary_embedding(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding of ``x [..., N, H, d]`` at ``positions [N]``.

    Channel pairs ``(a, a + d//2)``, ``a < d//2``, are rotated by ``positions * base^(-2a/d)``; an odd
    last channel is left as it is. ``<rot(q, i), rot(k, j)>`` depends on ``i - j`` only.
    """
    half = x.shape[-1] // 2
    freqs = base ** (-2.0 * torch.arange(half, device=x.device, dtype=x.dtype) / x.shape[-1])
    angle = positions.to(x.dtype)[:, None, None] * freqs  # [N, 1, half]
    cos, sin = angle.cos(), angle.sin()
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


def equivariant_attention_reference(
    q_s: Tensor, k_s: Tensor, w_s: Tensor, q_v: Tensor, k_v: Tensor, w_v: Tensor, causal: bool = False
) -> tuple[Tensor, Tensor]:
    """The attention of the module docstring written out (one head, O(N^2) memory).

    Shapes: ``q_s, k_s, w_s [..., N, ds]``, ``q_v, k_v, w_v [..., N, 3, dv]``.
    """
    d = q_s.shape[-1] + 3 * q_v.shape[-1]
    logits = (
        torch.einsum("...id,...jd->...ij", q_s, k_s) + torch.einsum("...ixc,...jxc->...ij", q_v, k_v)
    ) / d**0.5
    if causal:
        n = logits.shape[-1]
        mask = torch.ones(n, n, dtype=torch.bool, device=logits.device).tril()
        logits = logits.masked_fill(~mask, float("-inf"))
    a = logits.softmax(-1)
    return (torch.einsum("...ij,...jd->...id", a, w_s), torch.einsum("...ij,...jxc->...ixc", a, w_v))


class EquivariantAttention(nn.Module):
    """Multi-head equivariant self-attention ``(s [B, N, Cs], v [B, N, 3, Cv]) -> same``.

    Args:
        scalar_channels, vector_channels: ``Cs``, ``Cv``; both divisible by ``heads``.
        heads: number of heads ``H``.
        causal: token i attends to j <= i only.
        rope: rotary position embeddings on the scalar queries and keys (module docstring, Order).
    """

    def __init__(
        self,
        scalar_channels: int,
        vector_channels: int,
        heads: int = 4,
        *,
        causal: bool = False,
        rope: bool = False,
    ) -> None:
        super().__init__()
        if heads < 1 or scalar_channels % heads or vector_channels % heads:
            raise ValueError(
                f"scalar_channels ({scalar_channels}) and vector_channels "
                f"({vector_channels}) must be divisible by heads ({heads})"
            )
        self.cs, self.cv, self.heads, self.causal = scalar_channels, vector_channels, heads, causal
        self.rope = rope
        self.scalar_in = nn.Linear(scalar_channels, 3 * scalar_channels)
        self.vector_in = VectorLinear(vector_channels, 3 * vector_channels)
        self.scalar_out = nn.Linear(scalar_channels, scalar_channels)
        self.vector_out = VectorLinear(vector_channels, vector_channels)

    def _heads(self, xs: Tensor, xv: Tensor) -> Tensor:
        """``[B, N, Cs], [B, N, 3, Cv] -> [B, H, N, Cs/H + 3 Cv/H]``."""
        h = self.heads
        b, n = xs.shape[:2]
        xs = xs.reshape(b, n, h, self.cs // h)  # [B, N, H, ds]
        xv = xv.reshape(b, n, 3, h, self.cv // h).transpose(2, 3)  # [B, N, H, 3, dv]
        return torch.cat([xs, xv.reshape(b, n, h, 3 * (self.cv // h))], dim=-1).transpose(1, 2)

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if s.dim() != 3 or v.dim() != 4 or s.shape[-1] != self.cs or v.shape[-2:] != (3, self.cv):
            raise ValueError(
                f"expected s [B, N, {self.cs}] and v [B, N, 3, {self.cv}], got "
                f"{tuple(s.shape)} and {tuple(v.shape)}"
            )
        b, n = s.shape[:2]
        qs, ks, ws = self.scalar_in(s).split(self.cs, dim=-1)
        qv, kv, wv = self.vector_in(v).split(self.cv, dim=-1)
        if self.rope:
            pos = torch.arange(n, device=s.device)
            h = self.heads
            qs = rotary_embedding(qs.reshape(b, n, h, -1), pos).reshape(b, n, self.cs)
            ks = rotary_embedding(ks.reshape(b, n, h, -1), pos).reshape(b, n, self.cs)
        out = scaled_dot_product_attention(
            self._heads(qs, qv), self._heads(ks, kv), self._heads(ws, wv), is_causal=self.causal
        )
        out = out.transpose(1, 2)  # [B, N, H, d]
        ds = self.cs // self.heads
        s_att = out[..., :ds].reshape(b, n, self.cs)
        v_att = out[..., ds:].reshape(b, n, self.heads, 3, self.cv // self.heads)
        v_att = v_att.transpose(2, 3).reshape(b, n, 3, self.cv)
        return self.scalar_out(s_att), self.vector_out(v_att)
