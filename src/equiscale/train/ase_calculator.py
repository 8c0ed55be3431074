"""An ASE calculator for any equiscale energy model (energy, and forces = -dE/dr).

The model is called with one structure, ``{"pos" [n, 3], "z" [n], "batch" [n]}`` (plus
``"cell" [1, 3, 3]`` and ``"pbc" [1, 3]`` for periodic atoms), and must return ``{"energy": [1],
"forces": [n, 3]}`` (as :class:`equiscale.models.E2Former` does) or just the energy, in which case
forces are taken by autograd. ``atom_refs`` (eV per element, e.g. ``task.train.atom_refs``) are
added back to the energy, since models trained on residual energies predict E - sum_i ref[z_i].

    >>> atoms.calc = EquiscaleCalculator(model, atom_refs=refs)      # doctest: +SKIP
    >>> atoms.get_potential_energy(), atoms.get_forces()            # doctest: +SKIP

Or from a training checkpoint: ``EquiscaleCalculator.from_checkpoint("runs/x/checkpoints/best.ckpt")``.
"""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

__all__ = ["EquiscaleCalculator"]


class EquiscaleCalculator(Calculator):
    """ASE calculator wrapping an energy model (module docstring)."""

    implemented_properties = ["energy", "forces", "free_energy"]

    def __init__(self, model: torch.nn.Module, *, atom_refs: np.ndarray | None = None,
                 device: str = "cpu", dtype: torch.dtype = torch.float64, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        self.atom_refs = None if atom_refs is None else np.asarray(atom_refs, dtype=np.float64)

    @classmethod
    def from_checkpoint(cls, path: str, **kwargs) -> EquiscaleCalculator:
        """Model and atom references from an ``equiscale train`` checkpoint of an energy task."""
        from equiscale.train.trainer import build_task, load_checkpoint

        module, cfg = load_checkpoint(path)
        refs = getattr(build_task(cfg).train, "atom_refs", None)
        return cls(module.model, atom_refs=refs, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        pos = torch.tensor(a.positions, dtype=self.dtype, device=self.device, requires_grad=True)
        z = torch.tensor(a.numbers, dtype=torch.long, device=self.device)
        batch = {"pos": pos, "z": z, "batch": torch.zeros_like(z)}
        if a.pbc.any():
            batch["cell"] = torch.tensor(a.cell.array, dtype=self.dtype, device=self.device)[None]
            batch["pbc"] = torch.tensor(a.pbc, device=self.device)[None]
        with torch.enable_grad():
            out = self.model(batch)
            energy = out["energy"] if isinstance(out, dict) else out
            if isinstance(out, dict) and "forces" in out:
                forces = out["forces"]
            else:
                (grad,) = torch.autograd.grad(energy.sum(), pos)
                forces = -grad
        e = float(energy.detach().sum())
        if self.atom_refs is not None:
            e += float(self.atom_refs[a.numbers].sum())
        self.results = {"energy": e, "free_energy": e,
                        "forces": forces.detach().cpu().numpy().astype(np.float64)}
