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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from equiscale.nn.hyena import VectorLinear

__all__ = ["EquivariantAttention", "equivariant_attention_reference"]


def equivariant_attention_reference(q_s: Tensor, k_s: Tensor, w_s: Tensor, q_v: Tensor, k_v: Tensor,
                                    w_v: Tensor, causal: bool = False) -> tuple[Tensor, Tensor]:
    """The attention of the module docstring written out (one head, O(N^2) memory).

    Shapes: ``q_s, k_s, w_s [..., N, ds]``, ``q_v, k_v, w_v [..., N, 3, dv]``.
    """
    d = q_s.shape[-1] + 3 * q_v.shape[-1]
    logits = (torch.einsum("...id,...jd->...ij", q_s, k_s)
              + torch.einsum("...ixc,...jxc->...ij", q_v, k_v)) / d ** 0.5
    if causal:
        n = logits.shape[-1]
        mask = torch.ones(n, n, dtype=torch.bool, device=logits.device).tril()
        logits = logits.masked_fill(~mask, float("-inf"))
    a = logits.softmax(-1)
    return (torch.einsum("...ij,...jd->...id", a, w_s),
            torch.einsum("...ij,...jxc->...ixc", a, w_v))


class EquivariantAttention(nn.Module):
    """Multi-head equivariant self-attention ``(s [B, N, Cs], v [B, N, 3, Cv]) -> same``.

    Args:
        scalar_channels, vector_channels: ``Cs``, ``Cv``; both divisible by ``heads``.
        heads: number of heads ``H``.
        causal: token i attends to j <= i only.
    """

    def __init__(self, scalar_channels: int, vector_channels: int, heads: int = 4, *,
                 causal: bool = False) -> None:
        super().__init__()
        if heads < 1 or scalar_channels % heads or vector_channels % heads:
            raise ValueError(f"scalar_channels ({scalar_channels}) and vector_channels "
                             f"({vector_channels}) must be divisible by heads ({heads})")
        self.cs, self.cv, self.heads, self.causal = scalar_channels, vector_channels, heads, causal
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
            raise ValueError(f"expected s [B, N, {self.cs}] and v [B, N, 3, {self.cv}], got "
                             f"{tuple(s.shape)} and {tuple(v.shape)}")
        b, n = s.shape[:2]
        qs, ks, ws = self.scalar_in(s).split(self.cs, dim=-1)
        qv, kv, wv = self.vector_in(v).split(self.cv, dim=-1)
        out = scaled_dot_product_attention(self._heads(qs, qv), self._heads(ks, kv),
                                           self._heads(ws, wv), is_causal=self.causal)
        out = out.transpose(1, 2)  # [B, N, H, d]
        ds = self.cs // self.heads
        s_att = out[..., :ds].reshape(b, n, self.cs)
        v_att = out[..., ds:].reshape(b, n, self.heads, 3, self.cv // self.heads)
        v_att = v_att.transpose(2, 3).reshape(b, n, 3, self.cv)
        return self.scalar_out(s_att), self.vector_out(v_att)
