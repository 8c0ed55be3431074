"""From a trained model to molecular dynamics: load an ``equiscale train`` checkpoint of an energy
task as an ASE calculator and run NVE dynamics with it.

    python examples/train_on_extxyz.py --out runs/example_extxyz
    python examples/md_with_trained_model.py runs/example_extxyz/checkpoints/best.ckpt \\
        --structure runs/example_extxyz/frames.extxyz --steps 200

Any ASE structure works as the start (``--structure``: a file ``ase.io.read`` understands; its first
frame is used). Needs the ``train`` extra (``pip install "equiscale[train]"``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run_md(checkpoint: Path, structure: Path, steps: int, timestep_fs: float = 0.5) -> dict:
    """NVE dynamics with the model's energy and forces (-dE/dr); returns the energy drift."""
    import ase.io
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from equiscale.train.ase_calculator import EquiscaleCalculator

    atoms = ase.io.read(structure, index=0)
    atoms.calc = EquiscaleCalculator.from_checkpoint(str(checkpoint))
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    energies = []
    for _ in range(steps):
        dyn.run(1)
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
    drift = float(abs(energies[-1] - energies[0]))
    return {
        "steps": steps,
        "atoms": len(atoms),
        "total_energy_first": energies[0],
        "total_energy_last": energies[-1],
        "drift_eV": drift,
        "forces_finite": bool(np.isfinite(atoms.get_forces()).all()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a .ckpt written by equiscale train (task md)")
    parser.add_argument("--structure", type=Path, required=True, help="start structure (extxyz, xyz, ...)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    args = parser.parse_args(argv)
    out = run_md(args.checkpoint, args.structure, args.steps, args.timestep)
    print(
        f"{out['steps']} NVE steps of {out['atoms']} atoms: total energy "
        f"{out['total_energy_first']:.4f} -> {out['total_energy_last']:.4f} eV "
        f"(drift {out['drift_eV']:.2e} eV)"
    )
    if not out["forces_finite"]:
        raise SystemExit("forces are not finite")
    return out


if __name__ == "__main__":
    main()
