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

from equiscale.train.nve import nve_drift

__all__ = ["EquiscaleCalculator", "nve_drift"]

# QM9 targets that are potential energies of the geometry (eV), so -dE/dr are forces
POTENTIAL_ENERGY_TARGETS = frozenset({"U0"})


class EquiscaleCalculator(Calculator):
    """ASE calculator wrapping an energy model (module docstring)."""

    implemented_properties = ["energy", "forces", "free_energy", "stress"]

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        atom_refs: np.ndarray | None = None,
        device: str = "cpu",
        dtype: torch.dtype = torch.float64,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        self.atom_refs = None if atom_refs is None else np.asarray(atom_refs, dtype=np.float64)

    @classmethod
    def from_checkpoint(cls, path: str, **kwargs) -> EquiscaleCalculator:
        """Model and atom references from an ``equiscale train`` checkpoint of an energy task."""
        from equiscale.train.trainer import build_task, load_checkpoint

        module, cfg = load_checkpoint(path)
        target = (cfg.data_args or {}).get("target", "U0")
        if cfg.task not in ("md", "protein") and not (
            cfg.task == "qm9" and target in POTENTIAL_ENERGY_TARGETS
        ):
            what = f"task {cfg.task!r}" + (f" (target {target!r})" if cfg.task == "qm9" else "")
            raise ValueError(
                f"checkpoint {path} was trained on {what}, not on a potential energy: "
                "the calculator needs an 'md' or 'protein' checkpoint or a 'qm9' one with target "
                f"in {sorted(POTENTIAL_ENERGY_TARGETS)}"
            )
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
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": forces.detach().cpu().numpy().astype(np.float64),
        }
        if isinstance(out, dict) and "stress" in out:
            from ase.stress import full_3x3_to_voigt_6_stress

            s = out["stress"].detach().cpu().numpy().astype(np.float64)[0]
            self.results["stress"] = full_3x3_to_voigt_6_stress(s)


def main(argv: list[str] | None = None) -> dict:
    """``python -m equiscale.train.ase_calculator --checkpoint C --molecule CH3CH2OH``: NVE drift
    of a trained model over ``--steps`` (default 1 ps), beside the same run with GFN2-xTB."""
    import argparse
    import time

    from ase.build import molecule

    from equiscale.provenance import write_record

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--molecule", default="CH3CH2OH")
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reference", choices=["xtb", "none"], default="xtb")
    parser.add_argument("--out", default="results/mlip/nve.json")
    args = parser.parse_args(argv)
    started = time.time()
    torch.set_num_threads(1)
    atoms = molecule(args.molecule)
    kw = dict(temperature=args.temperature, timestep_fs=args.timestep, steps=args.steps)
    runs = {"model": nve_drift(atoms, EquiscaleCalculator.from_checkpoint(args.checkpoint), **kw)}
    if args.reference == "xtb":
        from equiscale.data.md import make_calculator

        runs["gfn2_xtb"] = nve_drift(atoms, make_calculator("xtb"), **kw)
    for name, r in runs.items():
        print(
            f"{name}: drift {r['drift_eV']:+.5f} eV over {r['duration_ps']} ps "
            f"({r['drift_rate_eV_per_atom_per_ps']:+.2e} eV/atom/ps), total-energy std "
            f"{r['total_energy_std_eV']:.5f} eV, mean T {r['mean_temperature_K']:.0f} K"
        )
    import shlex
    import sys

    argv_used = sys.argv[1:] if argv is None else argv
    record = {
        "run_with": "python -m equiscale.train.ase_calculator " + " ".join(shlex.quote(a) for a in argv_used),
        "experiment": "nve_drift",
        "molecule": args.molecule,
        "checkpoint": args.checkpoint,
        "settings": vars(args),
        "runs": runs,
    }
    return write_record(args.out, record, started=started)


if __name__ == "__main__":
    main()
