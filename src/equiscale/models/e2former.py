"""E2Former: an equivariant transformer whose convolutions run on nodes (Wigner 6j), for energies
and forces of molecules and materials.

    x^0_i = [Embed(z_i), 0, ..., 0]                          [N, (L+1)^2, C]
    x^(t+1) = E2FormerBlock(x^t)                              attention + feed-forward, t < T
    E = sum_i ( scale * MLP(Norm(x^T)_i,l=0) + shift + e_ref(z_i) )     per structure
    F_i = -dE/dr_i                                            (autograd; create_graph in training)

Neighbours come from ``batch["edge_index"]`` (+ ``"shifts"``) when given, else from
:func:`equiscale.ops.neighbor_list` (O(N) cell lists, periodic when ``batch`` has ``"cell"`` and
``"pbc"``). With ``parity="even"`` (default) only E(3)-parity paths are used: the energy is
invariant under rotations, reflections and translations and the forces rotate with the structure.

``forward(batch)`` takes ``pos [n_atoms, 3]``, ``z [n_atoms]`` (atomic numbers), ``batch
[n_atoms]`` (structure index, sorted; optional for one structure) and returns
``{"energy": [B], "forces": [n_atoms, 3]}`` (forces when ``compute_forces``; with
``direct_forces`` an extra ``"direct_forces"`` head predicts them from the l = 1 features; with
``compute_stress`` and a ``"cell"`` in the batch, ``"stress" [B, 3, 3]`` = (1/V) dE/d(strain),
from the same backward pass, positions and cell strained together).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equiscale.models.atoms_batch import check_atoms_batch
from equiscale.nn.e2former import E2FormerBlock, EquivariantRMSNorm
from equiscale.ops.neighbors import neighbor_list

__all__ = ["E2Former"]


class E2Former(nn.Module):
    """Energy (and force) model; see the module docstring.

    Args:
        num_elements: size of the atomic-number embedding (z < num_elements).
        channels, lmax, num_layers, heads: width C, degree L, depth T, attention heads.
        num_radial, cutoff: Gaussian radial basis size and neighbour cutoff (A).
        ffn_multiplier: hidden width of the feed-forward network in units of C.
        parity: "even" (E(3)) or "all" (SO(3) paths, as in the E2Former paper).
        centring: Wigner6jConv centring, "structure" or "target".
        conv_method: "node" (Wigner-6j factorisation) or "edge" (the same model with one CG
            tensor product per edge: a same-size edge-TP baseline with identical outputs).
        compute_forces: return forces = -dE/dpos.
        compute_stress: also return ``"stress" [B, 3, 3]`` = (1/V) dE/d(strain) (eV/A^3, ASE's
            sign) for periodic structures (``"cell"`` in the batch); needs compute_forces.
        direct_forces: also return a directly predicted force (l = 1 head).
        energy_scale, energy_shift: per-atom output scale and shift (data statistics).
    """

    def __init__(
        self,
        num_elements: int = 100,
        channels: int = 64,
        lmax: int = 2,
        num_layers: int = 3,
        heads: int = 4,
        num_radial: int = 16,
        cutoff: float = 5.0,
        ffn_multiplier: int = 2,
        parity: str = "even",
        centring: str = "target",
        conv_method: str = "node",
        compute_forces: bool = True,
        compute_stress: bool = False,
        direct_forces: bool = False,
        energy_scale: float = 1.0,
        energy_shift: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(lmax, int) or lmax < 0:
            raise ValueError(f"lmax must be a non-negative int, got {lmax!r}")
        for name, value in (
            ("num_elements", num_elements),
            ("channels", channels),
            ("heads", heads),
            ("num_radial", num_radial),
            ("ffn_multiplier", ffn_multiplier),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {num_layers!r}")
        if not float(cutoff) > 0:
            raise ValueError(f"cutoff must be > 0, got {cutoff!r}")
        if lmax < 1 and direct_forces:
            raise ValueError("direct_forces needs lmax >= 1")
        self.lmax, self.channels, self.cutoff = lmax, channels, cutoff
        self.compute_forces, self.direct_forces = compute_forces, direct_forces
        if compute_stress and not compute_forces:
            raise ValueError("compute_stress needs compute_forces=True")
        self.compute_stress = compute_stress
        self.energy_scale, self.energy_shift = float(energy_scale), float(energy_shift)
        self.embed = nn.Embedding(num_elements, channels)
        self.blocks = nn.ModuleList(
            E2FormerBlock(
                lmax,
                channels,
                heads=heads,
                num_radial=num_radial,
                cutoff=cutoff,
                ffn_multiplier=ffn_multiplier,
                parity=parity,
                centring=centring,
                conv_method=conv_method,
            )
            for _ in range(num_layers)
        )
        self.norm = EquivariantRMSNorm(lmax, channels)
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
        self.atom_ref = nn.Embedding(num_elements, 1)
        nn.init.zeros_(self.atom_ref.weight)
        self.force_head = nn.Linear(channels, 1, bias=False) if direct_forces else None

    def _graph(
        self, batch: dict[str, Tensor], pos: Tensor, index: Tensor | None, cell: Tensor | None, idx: Tensor
    ):
        if "edge_index" in batch:
            return batch["edge_index"], batch.get("shifts")
        nb = neighbor_list(
            pos.detach(),
            self.cutoff,
            batch=index,
            cell=None if cell is None else cell.detach(),
            pbc=batch.get("pbc"),
        )
        if cell is None:
            return nb.edge_index, None
        cell_b = cell if cell.dim() == 3 else cell[None]
        # shifts from the (possibly strained) cell, so that dE/dstrain sees them
        shifts = torch.einsum(
            "ek,ekx->ex",
            nb.cell_shifts.to(pos.dtype),
            cell_b.expand(int(idx.max()) + 1, 3, 3)[idx[nb.edge_index[1]]],
        )
        return nb.edge_index, shifts

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        pos, z = check_atoms_batch(batch, self.embed)
        index = batch.get("batch")
        n = pos.shape[0]
        n_struct = int(index.max()) + 1 if index is not None and n else 1
        idx = index.long() if index is not None else torch.zeros(n, dtype=torch.long, device=pos.device)
        cell = batch.get("cell")
        with torch.enable_grad():
            if self.compute_forces and not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            pos_in = pos
            strain = None
            if self.compute_stress and cell is not None:
                # E(r (1 + e), cell (1 + e)); stress = (1/V) dE/de at e = 0 (ASE's sign)
                strain = torch.zeros(n_struct, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                pos = pos + torch.einsum("ni,nij->nj", pos, sym[idx])
                cell = (cell if cell.dim() == 3 else cell[None]) + torch.bmm(
                    cell if cell.dim() == 3 else cell[None].expand(n_struct, 3, 3), sym
                )
            edge_index, shifts = self._graph(batch, pos, index, cell, idx)
            x = self.embed(z)[:, None, :]  # [N, 1, C]
            x = torch.cat([x, x.new_zeros(n, (self.lmax + 1) ** 2 - 1, self.channels)], dim=1)
            for block in self.blocks:
                x = block(x, pos, edge_index, batch=idx, shifts=shifts)
            x = self.norm(x)
            e_atom = self.head(x[:, 0]).squeeze(-1) * self.energy_scale + self.energy_shift
            e_atom = e_atom + self.atom_ref(z).squeeze(-1)
            energy = e_atom.new_zeros(n_struct).index_add(0, idx, e_atom)  # [B]
            out = {"energy": energy}
            if self.compute_forces:
                wrt = [pos_in] if strain is None else [pos_in, strain]
                grads = torch.autograd.grad(energy.sum(), wrt, create_graph=self.training, allow_unused=True)
                grad = grads[0]
                out["forces"] = -grad if grad is not None else torch.zeros_like(pos_in)
                if strain is not None:
                    volume = torch.linalg.det(cell).abs()  # [B]
                    g = grads[1] if grads[1] is not None else torch.zeros_like(strain)
                    out["stress"] = g / volume[:, None, None]  # [B, 3, 3], eV/A^3
        if self.force_head is not None:
            # the l = 1 block transforms like e3nn's Y^1, which is proportional to (x, y, z)
            out["direct_forces"] = self.force_head(x[:, 1:4]).squeeze(-1)
        return out
