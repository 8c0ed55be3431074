"""HybridNet: local Wigner-6j blocks (E2Former) interleaved with SE(3)-Hyena blocks over the atoms
in topology order, for energies and forces of large biomolecules.

    x^0_i = [Embed(z_i), 0, ..., 0]                                       [N, (L+1)^2, C]
    for t < T:
        x <- E2FormerBlock_t(x)                      neighbours within r_c, O(N) (cell lists)
        (s, v) <- (x_i,l=0,  x_i,l=1 + w_t (r_i - rbar))                  [N, C], [N, 3, C]
        (s, v) <- SE3HyenaBlock_t(s, v)              over the atoms of each structure in
                                                     topology order, O(N log N)
        x_i,l=0 <- s_i,   x_i,l=1 <- v_i             (degrees l >= 2 pass unchanged)
    E = sum_i ( MLP(Norm(x^T)_i,l=0) + e_ref(z_i) )                       per structure
    F_i = -dE/dr_i                                                        (autograd)

``rbar`` is the mean position of the structure, ``w_t [C]`` a learned weight per vector channel:
the Hyena block sees the centred positions as well as the local features, so its cross- and
dot-product long convolutions can combine geometry across the whole sequence. The l = 1 block of
``x`` holds the coefficients of e3nn's real spherical harmonics of degree 1, proportional to
(x, y, z), so it is used as Cartesian vectors as it is.

Symmetry: with ``parity="e3"`` (default; the E2Former paths of E(3) parity and Hyena's
parity-restoring cross products) the energy is invariant and the forces equivariant under
rotations, reflections and translations; ``parity="se3"`` drops reflections (Hyena's cross products
are then pseudovectors). The Hyena blocks are sequence operators: the model is not invariant
under a permutation of the atoms, only under a consistent relabelling of the topology order
(``batch`` must list each structure's atoms contiguously, in that order).

``forward(batch)`` takes ``pos [n_atoms, 3]``, ``z [n_atoms]``, ``batch [n_atoms]`` (structure
index, sorted; optional for one structure) and returns ``{"energy": [B], "forces": [n_atoms, 3]}``,
the batch layout of :class:`~equiscale.models.e2former.E2Former`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equiscale.models.atoms_batch import atoms_graph, check_atoms_batch, energy_and_forces, structure_index
from equiscale.nn.e2former import E2FormerBlock, EquivariantRMSNorm
from equiscale.nn.hyena import SE3HyenaBlock

__all__ = ["HybridNet"]

PARITIES = {"e3": ("even", "e3"), "se3": ("even", "se3")}  # parity -> (E2Former, Hyena)


class HybridNet(nn.Module):
    """Energy (and force) model; see the module docstring.

    Args:
        num_elements: size of the atomic-number embedding (z < num_elements).
        channels, lmax, num_layers: width C, degree L (>= 1), number T of (local, global) pairs.
        heads, num_radial, cutoff, ffn_multiplier, centring: of the E2Former blocks (cutoff r_c, A).
        filter_hidden, mlp_ratio, length_norm: of the SE(3)-Hyena blocks (non-causal).
        parity: "e3" (E(3)-equivariant) or "se3" (no reflections).
        compute_forces: return forces = -dE/dpos.
        energy_scale, energy_shift: per-atom output scale and shift (data statistics).
    """

    def __init__(self, num_elements: int = 100, channels: int = 32, lmax: int = 1, num_layers: int = 2, *,
                 heads: int = 4, num_radial: int = 16, cutoff: float = 5.0, ffn_multiplier: int = 2,
                 centring: str = "target", filter_hidden: int = 32, mlp_ratio: int = 2,
                 length_norm: bool = True, parity: str = "e3", compute_forces: bool = True,
                 energy_scale: float = 1.0, energy_shift: float = 0.0) -> None:
        super().__init__()
        if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 1:
            raise ValueError(f"lmax must be an int >= 1 (the Hyena blocks read the l = 1 features), "
                             f"got {lmax!r}")
        for name, value in (("num_elements", num_elements), ("channels", channels), ("heads", heads),
                            ("num_layers", num_layers), ("num_radial", num_radial)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if parity not in PARITIES:
            raise ValueError(f"parity must be one of {sorted(PARITIES)}, got {parity!r}")
        if not (isinstance(cutoff, (int, float)) and cutoff > 0):
            raise ValueError(f"cutoff must be a number > 0, got {cutoff!r}")
        local_parity, global_parity = PARITIES[parity]
        self.lmax, self.channels, self.cutoff = lmax, channels, float(cutoff)
        self.parity, self.compute_forces = parity, compute_forces
        self.energy_scale, self.energy_shift = float(energy_scale), float(energy_shift)
        self.embed = nn.Embedding(num_elements, channels)
        self.local = nn.ModuleList(
            E2FormerBlock(lmax, channels, heads=heads, num_radial=num_radial, cutoff=cutoff,
                          ffn_multiplier=ffn_multiplier, parity=local_parity, centring=centring)
            for _ in range(num_layers))
        self.glob = nn.ModuleList(
            SE3HyenaBlock(channels, channels, mlp_ratio=mlp_ratio, causal=False, parity=global_parity,
                          filter_hidden=filter_hidden, length_norm=length_norm)
            for _ in range(num_layers))
        self.pos_weight = nn.Parameter(torch.zeros(num_layers, channels))
        self.norm = EquivariantRMSNorm(lmax, channels)
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
        self.atom_ref = nn.Embedding(num_elements, 1)
        nn.init.zeros_(self.atom_ref.weight)

    def _global(self, t: int, x: Tensor, pos: Tensor, counts: list[int]) -> Tensor:
        """Hyena block ``t`` over each structure's atoms: ``x [N, (L+1)^2, C] -> same``."""
        outs = []
        for xs, ps in zip(x.split(counts), pos.split(counts)):
            centred = ps - ps.mean(0, keepdim=True)  # [n, 3]
            s = xs[:, 0]  # [n, C]
            v = xs[:, 1:4] + centred[:, :, None] * self.pos_weight[t]  # [n, 3, C]
            s, v = self.glob[t](s[None], v[None])  # one sequence: [1, n, C], [1, n, 3, C]
            outs.append(torch.cat([s[0, :, None], v[0], xs[:, 4:]], dim=1))
        return torch.cat(outs) if outs else x

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        pos, z = check_atoms_batch(batch, self.embed)
        if batch.get("cell") is not None:
            raise ValueError("HybridNet takes non-periodic structures (it centres positions per "
                             "structure); the batch has a 'cell'")
        idx, n_struct = structure_index(batch, pos)
        if idx.numel() > 1 and bool((idx[1:] < idx[:-1]).any()):
            raise ValueError("batch['batch'] must be sorted: each structure's atoms contiguous, in "
                             "topology order")
        counts = torch.bincount(idx, minlength=n_struct).tolist()
        n = pos.shape[0]
        with torch.enable_grad():
            if self.compute_forces and not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            edge_index, shifts = atoms_graph(batch, pos, self.cutoff)
            x = self.embed(z)[:, None, :]  # [N, 1, C]
            x = torch.cat([x, x.new_zeros(n, (self.lmax + 1) ** 2 - 1, self.channels)], dim=1)
            for t, block in enumerate(self.local):
                x = block(x, pos, edge_index, batch=idx, shifts=shifts)
                x = self._global(t, x, pos, counts)
            x = self.norm(x)
            e_atom = self.head(x[:, 0]).squeeze(-1) * self.energy_scale + self.energy_shift
            e_atom = e_atom + self.atom_ref(z).squeeze(-1)
            return energy_and_forces(e_atom, idx, n_struct, pos, compute_forces=self.compute_forces,
                                     create_graph=self.training)
