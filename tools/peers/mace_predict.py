"""Predict energies and forces of a trained MACE model on an extxyz file (runs in the peers venv).

    .venv-peers/bin/python tools/peers/mace_predict.py MODEL.model frames.xyz out.npz [--threads 1]

Writes ``energy [n_frames]`` (eV), ``forces [n_atoms_total, 3]`` (eV/A) and ``seconds_per_frame``
(median time of one MACE ASE-calculator call after warm-up) and ``n_parameters`` to ``out.npz``.
This file imports only ASE, numpy, torch and MACE: the peers venv pins e3nn 0.4.4, which
equiscale cannot import.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("frames")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch
    from ase.io import read
    from mace.calculators import MACECalculator

    torch.set_num_threads(args.threads)
    calc = MACECalculator(model_paths=args.model, device="cpu", default_dtype="float64")
    frames = read(args.frames, index=":")
    energies, forces, times = [], [], []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        t0 = time.perf_counter()
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        times.append(time.perf_counter() - t0)
    tmp = args.out + ".tmp.npz"
    np.savez(
        tmp,
        energy=np.array(energies),
        forces=np.concatenate(forces),
        seconds_per_frame=float(np.median(times[5:] if len(times) > 10 else times)),
        n_parameters=sum(p.numel() for p in calc.models[0].parameters()),
    )
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
