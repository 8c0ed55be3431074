"""Non-equivariant baselines for n-body: an MLP on the flattened system and a plain GNN.

Neither is equivariant: they show what equivariance buys (DESIGN.md's 'Linear' and 'GNN' rows).
Both predict a displacement added to the current positions: ``x_out = x + f(x, v, q)``.
"""

from __future__ import annotations

import torch
from torch import nn

from equiscale.models.egnn import complete_graph

Batch = dict[str, torch.Tensor]

__all__ = ["MLPBaseline", "GNNBaseline"]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class MLPBaseline(nn.Module):
    """MLP on the concatenated ``[x, v, q]`` of all N particles -> displacements ``[B, N, 3]``."""

    def __init__(self, n_particles: int = 5, hidden: int = 256, layers: int = 3) -> None:
        super().__init__()
        self.n = n_particles
        self.net = _mlp([7 * n_particles] + [hidden] * layers + [3 * n_particles])

    def forward(self, batch: Batch) -> torch.Tensor:
        x, v, q = batch["loc"], batch["vel"], batch["charges"]
        if x.shape[1] != self.n:
            raise ValueError(f"model was built for n_particles={self.n}, got {x.shape[1]}")
        inp = torch.cat([x, v, q.unsqueeze(-1)], dim=-1).flatten(1)
        return x + self.net(inp).view_as(x)


class GNNBaseline(nn.Module):
    """Message passing on raw coordinates (not equivariant): ``m_ij = phi_e(s_i, s_j, e_ij)``,
    ``s_i <- s_i + phi_h(s_i, sum_j m_ij)``, with ``s_i`` embedded from ``[x_i, v_i, q_i]``.

    ``edge_geometry`` picks the edge features ``e_ij`` besides the charge product ``q_i q_j``:
    ``"none"``; ``"distance"`` adds ``|x_i - x_j|^2`` (the EGNN paper's GNN, which passes the squared
    distance as an edge attribute); ``"relative"`` adds ``x_j - x_i`` and ``|x_i - x_j|^2``
    (translation-invariant, still not rotation-equivariant: the backbone frame averaging wants).
    """

    EDGE_GEOMETRIES = {"none": 0, "distance": 1, "relative": 4}

    def __init__(self, hidden: int = 64, layers: int = 4, edge_geometry: str = "none") -> None:
        super().__init__()
        if edge_geometry not in self.EDGE_GEOMETRIES:
            raise ValueError(
                f"edge_geometry must be one of {sorted(self.EDGE_GEOMETRIES)}, got {edge_geometry!r}"
            )
        self.edge_geometry = edge_geometry
        n_edge = 1 + self.EDGE_GEOMETRIES[edge_geometry]
        self.embed = nn.Linear(7, hidden)
        self.edge = nn.ModuleList(_mlp([2 * hidden + n_edge, hidden, hidden]) for _ in range(layers))
        self.node = nn.ModuleList(_mlp([2 * hidden, hidden, hidden]) for _ in range(layers))
        self.out = _mlp([hidden, hidden, 3])

    def forward(self, batch: Batch) -> torch.Tensor:
        missing = [k for k in ("loc", "vel", "charges") if k not in batch]
        if missing:
            raise ValueError(f"batch must hold loc, vel and charges; missing {missing}")
        x, v, q = batch["loc"], batch["vel"], batch["charges"]
        edges = complete_graph(x.shape[1], x.device)
        feats = [(q[:, edges[0]] * q[:, edges[1]]).unsqueeze(-1)]  # [B, E, 1]
        if self.edge_geometry != "none":
            rel = x[:, edges[0]] - x[:, edges[1]]  # [B, E, 3], source minus target
            if self.edge_geometry == "relative":
                feats.append(rel)
            feats.append(rel.pow(2).sum(-1, keepdim=True))
        e = torch.cat(feats, dim=-1)
        s = self.embed(torch.cat([x, v, q.unsqueeze(-1)], dim=-1))
        for edge, node in zip(self.edge, self.node):
            m = edge(torch.cat([s[:, edges[1]], s[:, edges[0]], e], dim=-1))
            agg = torch.zeros_like(s).index_add_(1, edges[1], m)
            s = s + node(torch.cat([s, agg], dim=-1))
        return x + self.out(s)
