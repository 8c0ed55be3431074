"""E(n)-equivariant graph network (Satorras, Hoogeboom, Welling 2021), velocity variant for n-body.

One layer (``EGNNLayer``), for nodes i with features h_i, positions x_i, velocities v_i:

    m_ij  = phi_e(h_i, h_j, |x_i - x_j|^2, a_ij)                       (edge message, invariant)
    x_i' = x_i + mean_j (x_i - x_j) phi_x(m_ij) + phi_v(h_i) v_i     (equivariant update)
    h_i' = h_i + phi_h(h_i, sum_j m_ij)                               (invariant update)

Invariant inputs only enter through |x_i - x_j|^2, |v_i| and a_ij = q_i q_j, so the predicted
positions are E(3)-equivariant (rotations, reflections, translations) and permutation-equivariant.
The n-body batch gives ``loc, vel [B, N, 3]`` and ``charges [B, N]``; the graph is complete.
"""

from __future__ import annotations

import torch
from torch import nn

Batch = dict[str, torch.Tensor]

__all__ = ["EGNN", "EGNNLayer", "complete_graph"]


def complete_graph(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Edges ``[2, n(n-1)]`` (source j, target i) of the complete graph without self loops."""
    idx = torch.arange(n, device=device)
    src, dst = torch.meshgrid(idx, idx, indexing="ij")
    mask = src != dst
    return torch.stack([src[mask], dst[mask]])


class EGNNLayer(nn.Module):
    """One equivariant message-passing layer with velocity term (see module docstring)."""

    def __init__(self, hidden: int, edge_dim: int = 1, update_features: bool = True) -> None:
        super().__init__()
        act = nn.SiLU()
        self.phi_e = nn.Sequential(
            nn.Linear(2 * hidden + 1 + edge_dim, hidden), act, nn.Linear(hidden, hidden), act
        )
        # the last layer's feature update would never be used (and DDP rejects unused weights)
        self.phi_h = (
            nn.Sequential(nn.Linear(2 * hidden, hidden), act, nn.Linear(hidden, hidden))
            if update_features
            else None
        )
        last = nn.Linear(hidden, 1, bias=False)
        nn.init.xavier_uniform_(last.weight, gain=0.001)
        self.phi_x = nn.Sequential(nn.Linear(hidden, hidden), act, last)
        self.phi_v = nn.Sequential(nn.Linear(hidden, hidden), act, nn.Linear(hidden, 1))

    def forward(
        self, h: torch.Tensor, x: torch.Tensor, v: torch.Tensor, edges: torch.Tensor, edge_attr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # h [B, N, H], x, v [B, N, 3], edges [2, E], edge_attr [B, E, A]
        src, dst = edges
        n = h.shape[1]
        diff = x[:, dst] - x[:, src]  # [B, E, 3]  x_i - x_j
        radial = (diff * diff).sum(-1, keepdim=True)  # [B, E, 1]
        m = self.phi_e(torch.cat([h[:, dst], h[:, src], radial, edge_attr], dim=-1))  # [B, E, H]
        shape = (h.shape[0], n, 3)
        trans = torch.zeros(shape, dtype=x.dtype, device=x.device).index_add_(1, dst, diff * self.phi_x(m))
        count = torch.bincount(dst, minlength=n).clamp(min=1).to(x.dtype)[None, :, None]
        x = x + trans / count + self.phi_v(h) * v
        if self.phi_h is not None:
            agg = torch.zeros_like(h).index_add_(1, dst, m)  # [B, N, H]
            h = h + self.phi_h(torch.cat([h, agg], dim=-1))
        return h, x


class EGNN(nn.Module):
    """EGNN for n-body: predicts positions after a fixed time from positions, velocities, charges.

    Args:
        hidden: feature width (EGNN paper: 64).
        layers: message-passing layers (EGNN paper: 4).
    Input batch: ``loc, vel [B, N, 3]``, ``charges [B, N]``. Output: positions ``[B, N, 3]``.
    """

    def __init__(self, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
        self.embed = nn.Linear(1, hidden)
        self.layers = nn.ModuleList(EGNNLayer(hidden, update_features=i < layers - 1) for i in range(layers))

    def forward(self, batch: Batch) -> torch.Tensor:
        missing = [k for k in ("loc", "vel", "charges") if k not in batch]
        if missing:
            raise ValueError(f"batch must hold loc, vel and charges; missing {missing}")
        x, v, q = batch["loc"], batch["vel"], batch["charges"]
        if x.device != self.embed.weight.device:
            raise ValueError(f"loc must be on the model's device {self.embed.weight.device}, got {x.device}")
        if x.dtype != self.embed.weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"loc must have the model's dtype {self.embed.weight.dtype}, got {x.dtype}")
        if x.ndim != 3 or x.shape[-1] != 3 or v.shape != x.shape:
            raise ValueError(
                f"loc and vel must be [B, N, 3] of one shape, got {tuple(x.shape)} and {tuple(v.shape)}"
            )
        if q.shape != x.shape[:2]:
            raise ValueError(f"charges must be [B, N] = {tuple(x.shape[:2])}, got {tuple(q.shape)}")
        edges = complete_graph(x.shape[1], x.device)
        edge_attr = (q[:, edges[0]] * q[:, edges[1]]).unsqueeze(-1)  # [B, E, 1]
        h = self.embed(v.norm(dim=-1, keepdim=True))
        for layer in self.layers:
            h, x = layer(h, x, v, edges, edge_attr)
        return x
