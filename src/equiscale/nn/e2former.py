"""E2Former layers on spherical features ``x [N, (L+1)^2, C]`` (e3nn order, channels last).

- :class:`SO3Linear`: one C_in x C_out matrix per degree, ``einsum("nmc,mcd->nmd", x, W[degree])``,
  bias on l = 0 only (anything else would break equivariance).
- :class:`EquivariantRMSNorm`: per degree l, x_l / sqrt(mean_(m,c) x_l^2 + eps) * gamma_(l,c); the
  norm of a degree-l block is rotation invariant, so the layer is equivariant.
- :class:`Gate`: scalars -> SiLU; degree l > 0 channels scaled by sigmoid gates computed from the
  scalars (invariant scalings of equivariant blocks).
- :class:`Wigner6jAttention`: attention over the neighbour graph whose values are moved by a
  :class:`~equiscale.ops.Wigner6jConv`:

      m_i = sum_(a,l,e) w_(a,l,e) sum_j alpha_ij [v_j^a (x) Y^l(r_hat_ij)]^e,
      alpha_ij,c = R_c(|r_ij|) * env(r_ij) exp(s_ij,h(c)) / (1 + sum_k env(r_ik) exp(s_ik,h(c))),
      s_ij,h = <q_i, k_j>_h / sqrt(C/H) + b_h(|r_ij|),

  with q, k linear in the scalar channel, R and b small networks of a Gaussian radial basis, env the
  C2 cutoff envelope. The "1 +" in the normaliser (a softmax with a null sink) keeps alpha smooth when
  an atom enters or leaves the cutoff, so energies and forces are continuous.
- :class:`E2FormerBlock`: ``x + Attn(Norm(x))`` then ``x + FFN(Norm(x))`` with FFN = Linear, Gate,
  Linear.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from equiscale.nn.radial import GaussianBasis, smooth_envelope
from equiscale.ops import Wigner6jConv

__all__ = ["SO3Linear", "EquivariantRMSNorm", "Gate", "Wigner6jAttention", "E2FormerBlock"]


def _degree_index(lmax: int) -> Tensor:
    """[(L+1)^2] degree of each e3nn-ordered coefficient."""
    return torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)])


class SO3Linear(nn.Module):
    """``[N, (L+1)^2, C_in] -> [N, (L+1)^2, C_out]``, one weight matrix per degree."""

    degree: Tensor

    def __init__(self, lmax: int, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__()
        self.lmax = lmax
        self.weight = nn.Parameter(torch.randn(lmax + 1, c_in, c_out) / math.sqrt(c_in))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.register_buffer("degree", _degree_index(lmax), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.einsum("nmc,mcd->nmd", x, self.weight[self.degree])  # [N, M, C_out]
        if self.bias is not None:
            out = torch.cat([out[:, :1] + self.bias, out[:, 1:]], dim=1)
        return out


class EquivariantRMSNorm(nn.Module):
    """Per-degree RMS normalisation with a learnable per-(degree, channel) scale."""

    degree: Tensor
    block_mean: Tensor

    def __init__(self, lmax: int, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(lmax + 1, channels))
        degree = _degree_index(lmax)
        self.register_buffer("degree", degree, persistent=False)
        onehot = torch.nn.functional.one_hot(degree, lmax + 1).to(torch.get_default_dtype())
        self.register_buffer("block_mean", onehot / onehot.sum(0) / channels, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_autocast_enabled(x.device.type):  # the norm runs in float32 (fp16: 1/sqrt overflows)
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.float())
        ms = torch.einsum("nmc,ml->nl", x * x, self.block_mean.to(x.dtype))  # [N, L+1]
        scale = torch.rsqrt(ms + self.eps)[:, self.degree, None]  # [N, M, 1]
        return x * scale * self.gamma[self.degree]


class Gate(nn.Module):
    """SiLU on scalars, sigmoid(linear(scalars)) gates on each degree-l > 0 channel."""

    degree: Tensor

    def __init__(self, lmax: int, channels: int) -> None:
        super().__init__()
        self.lmax = lmax
        self.gates = nn.Linear(channels, lmax * channels)
        self.register_buffer("degree", _degree_index(lmax)[1:] - 1, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        s = x[:, 0]  # [N, C]
        if self.lmax == 0:
            return torch.nn.functional.silu(s)[:, None]
        g = torch.sigmoid(self.gates(s)).view(x.shape[0], self.lmax, s.shape[1])  # [N, L, C]
        return torch.cat([torch.nn.functional.silu(s)[:, None], x[:, 1:] * g[:, self.degree]], 1)


def _segment_sink_softmax(logits: Tensor, weight: Tensor, dst: Tensor, n: int) -> Tensor:
    """a_e = w_e exp(s_e) / (1 + sum_(e' -> i) w_e' exp(s_e')) per target i; logits [E, H]."""
    logits = logits.to(weight.dtype)  # the softmax stays in the envelope's (float32) precision under autocast
    m = torch.zeros(n, logits.shape[1], dtype=logits.dtype, device=logits.device)
    m = m.scatter_reduce(
        0, dst[:, None].expand_as(logits), logits.detach(), "amax", include_self=True
    )  # max(0, max_j s): exact shift, no overflow
    ex = weight[:, None] * torch.exp(logits - m[dst])
    denom = torch.exp(-m).index_add(0, dst, ex)
    return ex / denom[dst]


class Wigner6jAttention(nn.Module):
    """Graph attention with Wigner-6j convolution values (module docstring)."""

    def __init__(
        self,
        lmax: int,
        channels: int,
        *,
        heads: int = 4,
        num_radial: int = 16,
        cutoff: float = 5.0,
        parity: str = "even",
        centring: str = "target",
        conv_method: str = "node",
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.cutoff = heads, cutoff
        self.query = nn.Linear(channels, channels, bias=False)
        self.key = nn.Linear(channels, channels, bias=False)
        self.value = SO3Linear(lmax, channels, channels)
        self.rbf = GaussianBasis(num_radial, cutoff)
        self.radial = nn.Sequential(
            nn.Linear(num_radial, channels), nn.SiLU(), nn.Linear(channels, channels + heads)
        )
        self.conv = Wigner6jConv(lmax, lmax, lmax, parity=parity, centring=centring, method=conv_method)
        n_paths = len(self.conv.paths)
        per_output = [sum(1 for p in self.conv.paths if p[2] == e) for e in range(lmax + 1)]
        scale = torch.tensor([1 / math.sqrt(per_output[e]) for (_, _, e) in self.conv.paths])
        self.path_weights = nn.Parameter(scale[:, None] * torch.ones(n_paths, channels))
        self.out = SO3Linear(lmax, channels, channels)

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        *,
        batch: Tensor | None = None,
        shifts: Tensor | None = None,
    ) -> Tensor:
        n, _, c = x.shape
        src, dst = edge_index[0], edge_index[1]
        vec = pos[dst] - pos[src]
        if shifts is not None:
            vec = vec - shifts
        sq = (vec * vec).sum(-1)  # |r|, with zero derivatives of every order at r = 0 (no NaN)
        r = torch.where(sq > 0, torch.where(sq > 0, sq, 1.0).sqrt(), 0.0)  # [E]
        radial = self.radial(self.rbf(r))  # [E, C + H]
        rad_w, rad_bias = radial[:, :c], radial[:, c:]
        q = self.query(x[:, 0]).view(n, self.heads, c // self.heads)  # [N, H, C/H]
        k = self.key(x[:, 0]).view(n, self.heads, c // self.heads)
        logits = (q[dst] * k[src]).sum(-1) / math.sqrt(c // self.heads) + rad_bias  # [E, H]
        att = _segment_sink_softmax(logits, smooth_envelope(r, self.cutoff), dst, n)  # [E, H]
        alpha = att.repeat_interleave(c // self.heads, dim=1) * rad_w  # [E, C]
        m = self.conv(
            self.value(x), pos, edge_index, alpha, batch=batch, shifts=shifts, path_weights=self.path_weights
        )
        return self.out(m)


class E2FormerBlock(nn.Module):
    """Pre-norm residual block: Wigner-6j attention, then a gated feed-forward network."""

    def __init__(
        self,
        lmax: int,
        channels: int,
        *,
        heads: int = 4,
        num_radial: int = 16,
        cutoff: float = 5.0,
        ffn_multiplier: int = 2,
        parity: str = "even",
        centring: str = "target",
        conv_method: str = "node",
    ) -> None:
        super().__init__()
        hidden = ffn_multiplier * channels
        self.norm1 = EquivariantRMSNorm(lmax, channels)
        self.attn = Wigner6jAttention(
            lmax,
            channels,
            heads=heads,
            num_radial=num_radial,
            cutoff=cutoff,
            parity=parity,
            centring=centring,
            conv_method=conv_method,
        )
        self.norm2 = EquivariantRMSNorm(lmax, channels)
        self.ffn = nn.Sequential(
            SO3Linear(lmax, channels, hidden), Gate(lmax, hidden), SO3Linear(lmax, hidden, channels)
        )

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        *,
        batch: Tensor | None = None,
        shifts: Tensor | None = None,
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), pos, edge_index, batch=batch, shifts=shifts)
        return x + self.ffn(self.norm2(x))
