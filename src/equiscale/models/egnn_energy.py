"""EGNN-style invariant energy model (the EGNN paper's molecular variant: no coordinate updates).

Per layer, for atoms i with features h_i and neighbours j within ``cutoff``:

    m_ij = phi_e(h_i, h_j, rbf(|r_ij|)) * env(|r_ij|)       [E, C]  (invariant edge message)
    h_i <- h_i + phi_h(h_i, sum_j m_ij / avg_neighbors)      [N, C]

with ``rbf`` a Gaussian basis of the distance and ``env`` the C2 cutoff envelope (so energies are
smooth when atoms cross the cutoff). ``E = sum_i (phi_out(h_i) * energy_scale + energy_shift +
atom_ref[z_i])`` per structure, ``F = -dE/dpos`` by autograd. Only distances enter: E is invariant
under rotations, reflections, translations and permutations; F is equivariant.

``forward(batch)`` reads ``pos [N, 3]``, ``z [N]``, optional ``batch [N]`` and returns
``{"energy": [B], "forces": [N, 3]}``, like :class:`~equiscale.models.E2Former`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equiscale.models.atoms_batch import (
    atoms_graph,
    check_atoms_batch,
    energy_and_forces,
    structure_index,
)
from equiscale.nn.radial import GaussianBasis, smooth_envelope

__all__ = ["EGNNEnergy"]


class EGNNEnergy(nn.Module):
    """Invariant message passing on distances; see the module docstring."""

    def __init__(
        self,
        num_elements: int = 10,
        channels: int = 64,
        num_layers: int = 4,
        num_radial: int = 16,
        cutoff: float = 5.0,
        avg_neighbors: float = 8.0,
        compute_forces: bool = True,
        energy_scale: float = 1.0,
        energy_shift: float = 0.0,
    ) -> None:
        super().__init__()
        if num_layers < 1 or channels < 1:
            raise ValueError(f"num_layers and channels must be >= 1, got {num_layers}, {channels}")
        self.cutoff, self.avg_neighbors = float(cutoff), float(avg_neighbors)
        self.compute_forces = compute_forces
        self.energy_scale, self.energy_shift = float(energy_scale), float(energy_shift)
        self.embed = nn.Embedding(num_elements, channels)
        self.rbf = GaussianBasis(num_radial, cutoff)
        act = nn.SiLU
        self.edge_mlps = nn.ModuleList(
            nn.Sequential(
                nn.Linear(2 * channels + num_radial, channels), act(), nn.Linear(channels, channels), act()
            )
            for _ in range(num_layers)
        )
        self.node_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * channels, channels), act(), nn.Linear(channels, channels))
            for _ in range(num_layers)
        )
        self.head = nn.Sequential(nn.Linear(channels, channels), act(), nn.Linear(channels, 1))
        self.atom_ref = nn.Embedding(num_elements, 1)
        nn.init.zeros_(self.atom_ref.weight)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        pos, z = check_atoms_batch(batch, self.embed)
        idx, n_struct = structure_index(batch, pos)
        with torch.enable_grad():
            if self.compute_forces and not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            edge_index, shifts = atoms_graph(batch, pos, self.cutoff)
            src, dst = edge_index[0], edge_index[1]
            vec = pos[src] - pos[dst]  # [E, 3]
            if shifts is not None:
                vec = vec + shifts.to(vec.dtype)
            r = vec.norm(dim=-1)  # [E]
            radial = self.rbf(r)  # [E, K]
            env = smooth_envelope(r, self.cutoff)[:, None]  # [E, 1]
            h = self.embed(z)  # [N, C]
            for edge_mlp, node_mlp in zip(self.edge_mlps, self.node_mlps):
                m = edge_mlp(torch.cat([h[dst], h[src], radial], dim=-1)) * env  # [E, C]
                agg = torch.zeros_like(h).index_add(0, dst, m) / self.avg_neighbors  # [N, C]
                h = h + node_mlp(torch.cat([h, agg], dim=-1))
            e_atom = self.head(h).squeeze(-1) * self.energy_scale + self.energy_shift
            e_atom = e_atom + self.atom_ref(z).squeeze(-1)
            return energy_and_forces(
                e_atom, idx, n_struct, pos, compute_forces=self.compute_forces, create_graph=self.training
            )
