"""Train an energy + force model on your own extxyz file (any file ASE writes with energies and
forces), then evaluate it on held-out frames.

Bring your own data::

    python examples/train_on_extxyz.py --data my_frames.extxyz --epochs 50 --out runs/mine

Without ``--data`` the script first makes a small data set to show the format: a short molecular
dynamics run of ethanol labelled by ASE's EMT calculator, written with ``ase.io.write``.
Needs the ``train`` extra (``pip install "equiscale[train]"``). The same run from the command line::

    equiscale train --task md --model gauntnet --set data_args.path=my_frames.extxyz ...
"""

from __future__ import annotations

import argparse
from pathlib import Path


def make_frames(path: Path, n_frames: int, seed: int = 0) -> Path:
    """``n_frames`` of ethanol at 500 K (EMT energies and forces), one every 5 MD steps, as extxyz."""
    import ase.io
    import numpy as np
    from ase import units
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = molecule("CH3CH2OH")
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=500, rng=np.random.default_rng(seed))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    frames = []
    for _ in range(n_frames):
        dyn.run(5)
        frames.append(atoms.copy())  # the copy keeps the energy and forces of this step
        frames[-1].calc = _single_point(atoms)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, frames, format="extxyz")
    return path


def _single_point(atoms):
    from ase.calculators.singlepoint import SinglePointCalculator

    return SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces())


def train(data: Path, out: Path, epochs: int, n_train: int, n_val: int, n_test: int, channels: int) -> dict:
    """A small GauntNet (MACE-like: Gaunt many-body products, forces = -dE/dr) on the file."""
    from equiscale.train import TrainConfig, fit

    cfg = TrainConfig(
        task="md",
        data_args={
            "path": str(data),
            "n_train": n_train,
            "n_val": n_val,
            "n_test": n_test,
            "force_weight": 10.0,
        },
        model="gauntnet",
        model_args={
            "num_elements": 10,
            "channels": channels,
            "lmax": 1,
            "lmax_sh": 2,
            "num_layers": 2,
            "correlation": 2,
            "cutoff": 4.0,
            "num_basis": 6,
            "compute_forces": True,
        },
        lr=5e-3,
        batch_size=4,
        eval_batch_size=8,
        max_epochs=epochs,
        scheduler="cosine",
        accelerator="cpu",
        devices=1,
        progress=False,
        out_dir=str(out),
        seed=0,
    )
    return fit(cfg)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="extxyz with energies and forces (default: make one)")
    parser.add_argument("--out", type=Path, default=Path("runs/example_extxyz"), help="run folder")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--frames", type=int, default=60, help="frames to make when --data is not given")
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args(argv)

    data = args.data or make_frames(args.out / "frames.extxyz", args.frames)
    n = sum(1 for line in data.read_text().splitlines() if "Properties=" in line)
    n_val = n_test = max(2, n // 6)
    results = train(data, args.out, args.epochs, n - n_val - n_test, n_val, n_test, args.channels)
    test = results["test"]
    print(
        f"{n} frames from {data}: test energy MAE {test['energy_mae']:.4f} eV, "
        f"force MAE {test['forces_mae']:.4f} eV/A"
    )
    print(f"checkpoint: {args.out / 'checkpoints' / 'best.ckpt'}")
    return results


if __name__ == "__main__":
    main()
