"""GauntNet: a MACE-like energy/force model on Gaunt tensor products.

Per layer t (features ``h [N, (L+1)^2, C]``, e3nn real SH, channels last):

    A_i = GauntConv(h_j * R(|r_ij|) Y(r_ij))                 (two-body, summed over neighbours)
    B_i = GauntManyBody(A_i, z_i) = sum_{nu <= correlation} w[z_i, nu, l] (A_i)^nu
                                                              (many-body, powers on one sphere grid)
    h_i <- h_i + B_i                                          (residual; with ``self_connection``,
                                                              h_i <- W[z_i, l] h_i + B_i as in MACE)
    E_i += MLP_t(h_i[l = 0])                                  (per-layer scalar readout)

``E = sum_i (E_i * energy_scale + energy_shift + atom_ref[z_i])`` per structure and forces
``F = -dE/dpos`` (autograd, ``create_graph`` while training so force losses train). Every operation is
E(3)-equivariant (Gaunt products have only even paths), so E is invariant and F equivariant under
rotations, reflections and translations (tested).

``forward(batch)`` reads ``pos [N, 3]``, ``z [N]`` (element index < ``num_elements``), optional
``batch [N]`` (structure index, sorted) and ``edge_index [2, E]`` (+ ``shifts``; else built with
``equiscale.ops.neighbor_list`` at ``cutoff``), and returns ``{"energy": [B], "forces": [N, 3]}``.
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
from equiscale.nn.gaunt import GauntConv, GauntManyBody
from equiscale.so3.layout import sh_degrees

__all__ = ["GauntNet"]


class GauntNet(nn.Module):
    def __init__(
        self,
        num_elements: int = 10,
        channels: int = 32,
        lmax: int = 2,
        lmax_sh: int = 2,
        num_layers: int = 2,
        correlation: int = 3,
        cutoff: float = 5.0,
        num_basis: int = 8,
        avg_neighbors: float = 10.0,
        backend: str = "auto",
        radial: str = "gaussian",
        radial_hidden: int = 32,
        radial_layers: int = 1,
        self_connection: bool = False,
        many_body_mix: bool = False,
        compute_forces: bool = True,
        energy_scale: float = 1.0,
        energy_shift: float = 0.0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        for name, value in (
            ("num_elements", num_elements),
            ("channels", channels),
            ("num_basis", num_basis),
            ("correlation", correlation),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not float(cutoff) > 0:
            raise ValueError(f"cutoff must be > 0, got {cutoff!r}")
        self.num_elements, self.channels, self.lmax = num_elements, channels, lmax
        self.cutoff, self.compute_forces = cutoff, compute_forces
        self.energy_scale, self.energy_shift = energy_scale, energy_shift
        self.embed = nn.Embedding(num_elements, channels)
        self.convs = nn.ModuleList(
            GauntConv(
                lmax,
                lmax_sh,
                lmax,
                channels,
                cutoff=cutoff,
                num_basis=num_basis,
                avg_neighbors=avg_neighbors,
                backend=backend,
                radial=radial,
                radial_hidden=radial_hidden,
                radial_layers=radial_layers,
            )
            for _ in range(num_layers)
        )
        self.many_body = nn.ModuleList(
            GauntManyBody(
                lmax, lmax, channels, correlation=correlation, num_elements=num_elements, mix=many_body_mix
            )
            for _ in range(num_layers)
        )
        # MACE's residual: an element-dependent linear map of h (one [C, C] per element and degree)
        self.self_connection = (
            nn.ParameterList(
                nn.Parameter(torch.eye(channels).expand(num_elements, lmax + 1, channels, channels).clone())
                for _ in range(num_layers)
            )
            if self_connection
            else None
        )
        self.register_buffer("degree", sh_degrees(lmax), persistent=False)
        self.readouts = nn.ModuleList(
            nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
            for _ in range(num_layers)
        )
        self.atom_ref = nn.Embedding(num_elements, 1)
        nn.init.zeros_(self.atom_ref.weight)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        pos, z = check_atoms_batch(batch, self.embed)
        n = pos.shape[0]
        idx, n_struct = structure_index(batch, pos)
        with torch.enable_grad():
            if self.compute_forces and not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            edge_index, shifts = atoms_graph(batch, pos, self.cutoff)
            h = self.embed(z)[:, None, :]  # [N, 1, C]
            h = torch.cat([h, h.new_zeros(n, (self.lmax + 1) ** 2 - 1, self.channels)], dim=1)
            e_atom = self.atom_ref(z).squeeze(-1)  # [N]
            for t, (conv, many_body, readout) in enumerate(zip(self.convs, self.many_body, self.readouts)):
                a = conv(h, pos, edge_index, shifts)  # [N, K, C]
                if self.self_connection is not None:
                    w = self.self_connection[t][z][:, self.degree]  # [N, K, C, C]
                    h = torch.einsum("nkc,nkcd->nkd", h, w)
                h = h + many_body(a, z)
                e_atom = e_atom + readout(h[:, 0]).squeeze(-1) * self.energy_scale
            e_atom = e_atom + self.energy_shift
            return energy_and_forces(
                e_atom, idx, n_struct, pos, compute_forces=self.compute_forces, create_graph=self.training
            )
