"""``equiscale bench md-speed``: time per MD step through ASE for trained models and MACE.

Systems: one molecule (``--molecule``, an ``ase.build.molecule`` name) and a cluster of about
``--big-atoms`` atoms made of copies of it (randomly rotated, on a cubic grid of spacing
``--spacing`` A, non-periodic). Each model runs velocity Verlet at 0.5 fs from 300 K velocities
(seed 0) through its ASE calculator: ours through :class:`equiscale.train.ase_calculator.
EquiscaleCalculator` (float64, like MACE's), MACE through its own ``MACECalculator`` in the peers
venv (``tools/peers/mace_md_speed.py``). After 3 warm-up steps the median of ``--steps`` per-step
times is reported, one thread each. Speed only: the cluster is outside the training data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_arguments", "run", "molecule_cluster"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoints", nargs="*", default=[], help="our trained md checkpoints to time")
    parser.add_argument(
        "--mace-model",
        default=None,
        help="MACE .model file to time (bench mace writes one); MACE is skipped without it",
    )
    parser.add_argument(
        "--peers-python",
        default=".venv-peers/bin/python",
        help="python of the venv with mace-torch (make peers)",
    )
    parser.add_argument(
        "--molecule", default="CH3CH2OH", help="ase.build.molecule name; the cluster is made of copies of it"
    )
    parser.add_argument("--big-atoms", type=int, default=1000, help="atoms in the cluster (about)")
    parser.add_argument("--spacing", type=float, default=5.0, help="A between molecule centres")
    parser.add_argument(
        "--steps", type=int, default=20, help="timed MD steps (median reported, after 3 warm-up steps)"
    )
    parser.add_argument("--out", default="results/mlip/md_speed_cpu.json", help="JSON record")


def molecule_cluster(name: str, n_atoms: int, spacing: float, seed: int = 0):
    """About ``n_atoms`` atoms: copies of ``molecule(name)``, randomly rotated, on a cubic grid."""
    import torch
    from ase import Atoms
    from ase.build import molecule

    from equiscale.testing import random_rotation

    base = molecule(name)
    base.positions -= base.positions.mean(0)
    copies = max(1, round(n_atoms / len(base)))
    side = int(np.ceil(copies ** (1 / 3)))
    gen = torch.Generator().manual_seed(seed)
    out = Atoms()
    for k in range(copies):
        centre = spacing * np.array([k % side, (k // side) % side, k // side**2], dtype=float)
        rot = random_rotation(torch.float64, gen).numpy()
        out += Atoms(base.numbers, positions=base.positions @ rot.T + centre)
    return out


def _time_md(atoms, calc, steps: int) -> float:
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(3)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        dyn.run(1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from ase.build import molecule
    from ase.io import write

    from equiscale.bench.common import write_record
    from equiscale.train.ase_calculator import EquiscaleCalculator

    started = time.time()
    if args.steps < 1 or args.big_atoms < 1 or args.spacing <= 0:
        raise ValueError("--steps and --big-atoms must be >= 1 and --spacing > 0")
    torch.set_num_threads(1)
    systems = {
        "molecule": molecule(args.molecule),
        "cluster": molecule_cluster(args.molecule, args.big_atoms, args.spacing),
    }
    rows = []
    for ckpt in args.checkpoints:
        calc = EquiscaleCalculator.from_checkpoint(ckpt)
        run_results = Path(ckpt).parents[1] / "results.json"
        name = (
            json.loads(run_results.read_text())["model"] if run_results.is_file() else run_results.parent.name
        )
        for key, atoms in systems.items():
            rows.append(
                {
                    "model": name,
                    "checkpoint": ckpt,
                    "system": key,
                    "atoms": len(atoms),
                    "seconds_per_step": _time_md(atoms, calc, args.steps),
                }
            )
    if args.mace_model is not None:
        out = Path(args.out)
        tool = Path(__file__).resolve().parents[3] / "tools" / "peers" / "mace_md_speed.py"
        for key, atoms in systems.items():
            xyz = out.with_name(f".{out.stem}_{key}.xyz")
            write(xyz, atoms)
            try:
                res = subprocess.run(
                    [args.peers_python, str(tool), args.mace_model, str(xyz), str(args.steps)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                )
            finally:
                xyz.unlink(missing_ok=True)
            rows.append(
                {
                    "model": "mace",
                    "checkpoint": args.mace_model,
                    "system": key,
                    **json.loads(res.stdout.strip().splitlines()[-1]),
                }
            )
    for r in rows:
        print(
            f"{r['model']:12s} {r['system']:9s} {r['atoms']:5d} atoms: "
            f"{1000 * r['seconds_per_step']:.1f} ms per MD step"
        )
    return write_record(
        args.out,
        {"benchmark": "md_speed", "molecule": args.molecule, "steps": args.steps, "rows": rows},
        started=started,
    )
