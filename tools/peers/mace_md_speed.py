"""Time per MD step of a MACE model through its ASE calculator (runs in the peers venv).

    .venv-peers/bin/python tools/peers/mace_md_speed.py MODEL.model system.xyz STEPS [--threads 1]

Velocity Verlet at 0.5 fs from 300 K Maxwell-Boltzmann velocities (seed 0), 3 warm-up steps, then
STEPS timed steps; prints a JSON object ``{"atoms", "steps", "seconds_per_step"}`` (median of the
per-step times). Imports only ASE, numpy, torch and MACE (see mace_predict.py).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("system")
    parser.add_argument("steps", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch
    from ase import units
    from ase.io import read
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from mace.calculators import MACECalculator

    torch.set_num_threads(args.threads)
    atoms = read(args.system)
    atoms.calc = MACECalculator(model_paths=args.model, device="cpu", default_dtype="float64")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(3)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        dyn.run(1)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"atoms": len(atoms), "steps": args.steps, "seconds_per_step": float(np.median(times))}))


if __name__ == "__main__":
    main()
