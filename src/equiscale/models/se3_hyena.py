"""SE3HyenaNet: a stack of SE(3)-Hyena blocks over a sequence of points, vectors and scalars.

Input tokens ``i = 0..N-1`` (batch axis first): positions ``pos [B, N, 3]`` (optional), vectors
``vec [B, N, Vin, 3]`` (optional), scalars ``sca [B, N, Sin]`` (optional). The network

1. centres the positions: ``x_i = pos_i - c_i`` with ``c_i`` the mean over all tokens
   (``causal=False``) or over the prefix ``j <= i`` (``causal=True``, so causality is kept); this makes
   everything after it translation-invariant;
2. embeds: vector channels ``[x_i, vec_i] W`` (channel mixing, no bias); scalars
   ``Lin([sca_i, Gram(x_i, vec_i)])`` with the Gram matrix of the input vectors (E(3)-invariant);
3. applies ``depth`` :class:`~equiscale.nn.hyena.SE3HyenaBlock` (or any mixer the subclass chooses);
4. reads out per token scalars ``Lin(s)`` and vectors ``v W``; predicted *positions* are
   ``c_i + vector`` (translation-equivariant).

Symmetry: rotations and translations exactly (float64 error ~1e-15, tested); reflections too with
``parity="e3"``; tokens are ordered (a sequence model, not permutation-equivariant: see
:mod:`equiscale.nn.hyena`).

``forward(batch)`` understands two batch layouts:

- recall (:mod:`equiscale.data.recall`): ``pos [B, N, 3]``, ``token_type [B, N, T]`` -> the point
  predicted at the last token, ``[B, 3]``;
- n-body: ``loc, vel [B, P, 3]``, ``charges [B, P]`` -> predicted positions ``[B, P, 3]``
  (``loc + displacement``; the P particles are the tokens, use ``causal=False``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equiscale.distributed.shard import Shard, all_reduce_sum, connect, gather_rows
from equiscale.nn.hyena import HyenaOperator, SE3HyenaBlock, VectorLinear

Batch = dict[str, Tensor]

__all__ = ["SE3HyenaNet", "HyenaNet", "centre_positions", "gram_invariants"]


def centre_positions(pos: Tensor, causal: bool, shard: Shard | None = None) -> tuple[Tensor, Tensor]:
    """``(pos - c, c)`` with ``c [..., N, 3]`` the mean (or running prefix mean) over tokens.

    With ``shard``, ``pos`` is this rank's block of the tokens and the means run over the whole
    sequence: the prefix sums add the totals of the blocks before this one, the mean divides the
    sum over all ranks by the total length.
    """
    n = pos.shape[-2]
    start, total = (0, n) if shard is None else (shard.start, shard.total)
    if causal:
        count = torch.arange(start + 1, start + n + 1, device=pos.device, dtype=pos.dtype)[:, None]
        csum = pos.cumsum(-2)
        if shard is not None:
            before = gather_rows(pos.sum(-2), shard)[: shard.rank].sum(0)  # [..., 3]
            csum = csum + before.unsqueeze(-2)
        c = csum / count
    elif shard is None:
        c = pos.mean(-2, keepdim=True).expand_as(pos)
    else:
        c = (all_reduce_sum(pos.sum(-2, keepdim=True), shard) / max(total, 1)).expand_as(pos)
    return pos - c, c


def gram_invariants(vecs: Tensor) -> Tensor:
    """Gram matrix ``<u_a, u_b>``, upper triangle: ``[..., 3, C] -> [..., C(C+1)/2]``."""
    c = vecs.shape[-1]
    gram = torch.einsum("...ia,...ib->...ab", vecs, vecs)
    iu = torch.triu_indices(c, c, device=vecs.device)
    return gram[..., iu[0], iu[1]]


def _tokens(batch: Batch) -> tuple[Tensor | None, Tensor | None, Tensor | None, str]:
    """(pos, vec, sca, layout) from a recall or n-body batch."""
    if "loc" in batch:
        return batch["loc"], batch["vel"][..., None, :], batch["charges"][..., None], "nbody"
    if "pos" in batch:
        return batch["pos"], batch.get("vec"), batch.get("token_type"), "recall"
    raise ValueError(f"batch must hold 'pos' (recall) or 'loc' (n-body), got keys {sorted(batch)}")


class SE3HyenaNet(nn.Module):
    """SE(3)-Hyena network (module docstring).

    ``context_parallel_keys``: the batch entries whose axis 1 is the token axis, split over the
    processes of a context-parallel run (the recall layout: one prediction per sequence).

    Args:
        scalar_channels, vector_channels, depth: width and depth.
        scalar_in, vector_in: number of input scalars per token and input vector channels (besides
            the centred position).
        scalar_out, vector_out: per-token outputs of :meth:`forward_tokens`.
        causal, parity, filter_hidden, mlp_ratio: see :class:`~equiscale.nn.hyena.SE3HyenaOperator`.
        checkpoint_mixer: recompute each block's mixer in backward (less memory, ~1.3x time).
        shuffle_tokens: for sets presented as sequences (n-body particles): in training mode the
            particles are fed in a random order (outputs mapped back), an augmentation towards
            permutation invariance that the sequence model does not have by construction.
        length_norm: divide the summing long convolutions by ``N`` so that a model trained at one
            length runs at another (:class:`~equiscale.nn.hyena.SE3HyenaOperator`, Length).
    """

    context_parallel_keys = ("pos", "vec", "token_type")

    def __init__(
        self,
        scalar_channels: int = 64,
        vector_channels: int = 16,
        depth: int = 4,
        *,
        scalar_in: int = 3,
        vector_in: int = 0,
        scalar_out: int = 0,
        vector_out: int = 1,
        causal: bool = True,
        parity: str = "se3",
        filter_hidden: int = 32,
        mlp_ratio: int = 2,
        checkpoint_mixer: bool = False,
        shuffle_tokens: bool = False,
        length_norm: bool = False,
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        if scalar_channels < 1 or vector_channels < 1:
            raise ValueError(
                f"scalar_channels and vector_channels must be >= 1, got {scalar_channels}, {vector_channels}"
            )
        cs, cv = scalar_channels, vector_channels
        self.causal = causal
        self.checkpoint_mixer = checkpoint_mixer
        self.shuffle_tokens = shuffle_tokens
        self.scalar_in, self.vector_in = scalar_in, vector_in
        self.length_norm = length_norm
        n_vec = vector_in + 1
        self.embed_v = VectorLinear(n_vec, cv)
        self.embed_s = nn.Linear(scalar_in + n_vec * (n_vec + 1) // 2, cs)
        self.blocks = nn.ModuleList(
            self._block(
                cs, cv, causal=causal, parity=parity, filter_hidden=filter_hidden, mlp_ratio=mlp_ratio
            )
            for _ in range(depth)
        )
        self.head_s = nn.Sequential(nn.LayerNorm(cs), nn.Linear(cs, scalar_out)) if scalar_out else None
        self.head_v = VectorLinear(cv, vector_out) if vector_out else None

    def _block(
        self, cs: int, cv: int, *, causal: bool, parity: str, filter_hidden: int, mlp_ratio: int
    ) -> nn.Module:
        return SE3HyenaBlock(
            cs,
            cv,
            mlp_ratio=mlp_ratio,
            causal=causal,
            parity=parity,
            filter_hidden=filter_hidden,
            checkpoint_mixer=self.checkpoint_mixer,
            length_norm=self.length_norm,
        )

    def forward_tokens(
        self,
        pos: Tensor | None = None,
        vec: Tensor | None = None,
        sca: Tensor | None = None,
        shard: Shard | None = None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """``(scalars [B, N, scalar_out], vectors [B, N, vector_out, 3], centres [B, N, 3])``.

        ``vec`` is ``[B, N, Vin, 3]`` (vectors last, as data comes); inside, vector features are
        channels-last ``[B, N, 3, Cv]``. ``shard`` (context parallelism): the inputs are this
        rank's block of the tokens of a sequence split over ranks
        (:class:`~equiscale.distributed.Shard`), the outputs this rank's block of the
        single-process outputs; parameter gradients are each rank's share, summed over the ranks
        by DDP or :func:`~equiscale.distributed.all_reduce_gradients`.
        """
        ref = next(t for t in (pos, vec, sca) if t is not None)
        shape = ref.shape[:2]
        if pos is None:
            pos = ref.new_zeros(*shape, 3)
        if pos.shape[-1] != 3 or pos.shape[:-1] != shape:
            raise ValueError(f"pos must be [B, N, 3] = {(*shape, 3)}, got {tuple(pos.shape)}")
        if pos.device != self.embed_s.weight.device:
            raise ValueError(
                f"pos must be on the model's device {self.embed_s.weight.device}, got {pos.device}"
            )
        if pos.dtype != self.embed_s.weight.dtype and not torch.is_autocast_enabled(pos.device.type):
            raise TypeError(f"pos must have the model's dtype {self.embed_s.weight.dtype}, got {pos.dtype}")
        x, centre = centre_positions(pos, self.causal, shard)
        vecs = [x[..., None]]  # [B, N, 3, 1]
        if self.vector_in:
            if vec is None or vec.shape != (*shape, self.vector_in, 3):
                raise ValueError(
                    f"vec must be [B, N, {self.vector_in}, 3], got "
                    f"{None if vec is None else tuple(vec.shape)}"
                )
            vecs.append(vec.transpose(-1, -2))
        u = torch.cat(vecs, dim=-1)  # [B, N, 3, Vin + 1]
        feats = [gram_invariants(u)]
        if self.scalar_in:
            if sca is None or sca.shape != (*shape, self.scalar_in):
                raise ValueError(
                    f"scalars must be [B, N, {self.scalar_in}], got "
                    f"{None if sca is None else tuple(sca.shape)}"
                )
            feats.insert(0, sca.to(u.dtype))
        s = self.embed_s(torch.cat(feats, dim=-1))  # [B, N, Cs]
        v = self.embed_v(u)  # [B, N, 3, Cv]
        for block in self.blocks:
            s, v = block(s, v) if shard is None else block(s, v, shard=shard)
        s_out = self.head_s(s) if self.head_s is not None else None
        v_out = self.head_v(v).transpose(-1, -2) if self.head_v is not None else None
        return s_out, v_out, centre

    def forward(self, batch: Batch, shard: Shard | None = None) -> Tensor:
        """Predicted points (module docstring). With ``shard`` the tokens are this rank's block:
        n-body gives this rank's block of the positions; recall gives the point read at the
        sequence's last token on every rank."""
        pos, vec, sca, layout = _tokens(batch)
        total = pos.shape[-2] if shard is None else shard.total
        if layout == "recall" and total == 0:
            raise ValueError(
                f"pos must hold at least 1 token (the prediction is read at the last), "
                f"got shape {tuple(pos.shape)} with 0 tokens"
            )
        if self.head_v is None:
            raise ValueError("forward(batch) predicts points: build the model with vector_out >= 1")
        _, v_out, centre = self.forward_tokens(
            pos, vec if self.vector_in else None, sca if self.scalar_in else None, shard
        )
        assert v_out is not None
        if layout == "nbody":
            return batch["loc"] + v_out[..., 0, :]
        if shard is None:
            return centre[:, -1] + v_out[:, -1, 0]
        last = max(p for p, m in enumerate(shard.sizes) if m > 0)  # the rank with the last token
        # every rank stays in the graph: its backward holds collectives the others wait for
        mine = (
            centre[:, -1] + v_out[:, -1, 0]
            if shard.rank == last
            else connect(centre.new_zeros(centre.shape[0], 3), v_out, centre)
        )
        return gather_rows(mine, shard)[last]


class HyenaNet(nn.Module):
    """Plain (non-equivariant) Hyena baseline with the same width, depth and batch layouts.

    Each token is the flat vector ``[x_i (3), vec_i (3 Vin), sca_i]`` (``x`` centred as in
    :class:`SE3HyenaNet`, so it is translation-invariant but not rotation-equivariant), embedded to
    ``width = scalar_channels + 3 * vector_channels`` features, then ``depth`` residual blocks
    (LayerNorm -> :class:`~equiscale.nn.hyena.HyenaOperator` -> residual, LayerNorm -> MLP -> residual)
    and a linear read-out of 3 numbers per token.
    """

    def __init__(
        self,
        scalar_channels: int = 64,
        vector_channels: int = 16,
        depth: int = 4,
        *,
        scalar_in: int = 3,
        vector_in: int = 0,
        causal: bool = True,
        filter_hidden: int = 32,
        mlp_ratio: int = 2,
    ) -> None:
        super().__init__()
        width = scalar_channels + 3 * vector_channels
        self.causal = causal
        self.scalar_in, self.vector_in = scalar_in, vector_in
        self.embed = nn.Linear(3 + 3 * vector_in + scalar_in, width)
        self.mixers = nn.ModuleList(
            HyenaOperator(width, causal=causal, filter_hidden=filter_hidden) for _ in range(depth)
        )
        self.norms1 = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.norms2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.SiLU(), nn.Linear(mlp_ratio * width, width))
            for _ in range(depth)
        )
        self.head = nn.Linear(width, 3)

    def forward(self, batch: Batch) -> Tensor:
        pos, vec, sca, layout = _tokens(batch)
        assert pos is not None
        if pos.device != self.embed.weight.device:
            raise ValueError(
                f"pos must be on the model's device {self.embed.weight.device}, got {pos.device}"
            )
        autocast = torch.is_autocast_enabled(pos.device.type)
        if pos.dim() != 3 or pos.shape[-1] != 3 or (pos.dtype != self.embed.weight.dtype and not autocast):
            raise ValueError(
                f"pos must be [B, N, 3] of the model's dtype {self.embed.weight.dtype}, got "
                f"{tuple(pos.shape)} {pos.dtype}"
            )
        if layout == "recall" and pos.shape[1] == 0:
            raise ValueError("pos must hold at least 1 token (the prediction is read at the last), got 0")
        x, centre = centre_positions(pos, self.causal)
        feats = [x]
        if self.vector_in:
            assert vec is not None
            feats.append(vec.flatten(-2))
        if self.scalar_in:
            assert sca is not None
            feats.append(sca.to(x.dtype))
        h = self.embed(torch.cat(feats, dim=-1))
        for mixer, n1, n2, mlp in zip(self.mixers, self.norms1, self.norms2, self.mlps):
            h = h + mixer(n1(h))
            h = h + mlp(n2(h))
        out = self.head(h)  # [B, N, 3]
        if layout == "nbody":
            return batch["loc"] + out
        return centre[:, -1] + out[:, -1]
