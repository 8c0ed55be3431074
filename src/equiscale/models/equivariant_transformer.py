"""Equivariant transformer: :class:`~equiscale.models.se3_hyena.SE3HyenaNet` with attention as mixer.

Everything but the token mixer is shared with SE3HyenaNet (embedding, centring, norms, gated MLP,
read-out), so at equal ``scalar_channels``, ``vector_channels`` and ``depth`` the two differ only in
how tokens talk: O(N^2) invariant-weight attention
(:class:`~equiscale.nn.attention.EquivariantAttention`, on ``scaled_dot_product_attention``) versus
O(N log N) long convolutions. E(3)-equivariant (no cross products); with ``causal=False`` also
permutation-equivariant (no positional encoding; the centring mean is order-free), tested.

``rope=True`` adds rotary position embeddings to the attention's scalar queries and keys
(:func:`~equiscale.nn.attention.rotary_embedding`): still E(3)-equivariant, now order-aware. A
sequence task such as associative recall needs it: without any positional information a
bidirectional transformer is permutation-equivariant and cannot tell which value follows which key.
"""

from __future__ import annotations

from torch import nn

from equiscale.models.se3_hyena import SE3HyenaNet
from equiscale.nn.attention import EquivariantAttention
from equiscale.nn.hyena import SE3HyenaBlock

__all__ = ["EquivariantTransformer"]


class EquivariantTransformer(SE3HyenaNet):
    """Same arguments and batch layouts as :class:`SE3HyenaNet`, plus ``heads`` and ``rope``."""

    def __init__(
        self,
        scalar_channels: int = 64,
        vector_channels: int = 16,
        depth: int = 4,
        *,
        heads: int = 4,
        scalar_in: int = 3,
        vector_in: int = 0,
        scalar_out: int = 0,
        vector_out: int = 1,
        causal: bool = True,
        mlp_ratio: int = 2,
        checkpoint_mixer: bool = False,
        rope: bool = False,
    ) -> None:
        self._heads, self.rope = heads, rope
        super().__init__(
            scalar_channels,
            vector_channels,
            depth,
            scalar_in=scalar_in,
            vector_in=vector_in,
            scalar_out=scalar_out,
            vector_out=vector_out,
            causal=causal,
            parity="e3",
            mlp_ratio=mlp_ratio,
            checkpoint_mixer=checkpoint_mixer,
        )

    def _block(
        self, cs: int, cv: int, *, causal: bool, parity: str, filter_hidden: int, mlp_ratio: int
    ) -> nn.Module:
        return SE3HyenaBlock(
            cs,
            cv,
            mlp_ratio=mlp_ratio,
            checkpoint_mixer=self.checkpoint_mixer,
            mixer=EquivariantAttention(cs, cv, self._heads, causal=causal, rope=self.rope),
        )
