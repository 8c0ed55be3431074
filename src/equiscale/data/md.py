"""``equiscale data md``: molecular-dynamics frames labelled by a real calculator, as extxyz.

Runs ASE Langevin dynamics (``--temperature`` K, ``--timestep`` fs, ``--friction`` 1/fs) from a
structure with Maxwell-Boltzmann velocities and stores every ``--interval``-th step (positions,
energy in eV, forces in eV/A) after ``--equilibrate`` steps.

Labels are the calculator's own: the centre-of-mass constraint (``FixCom``) steers the dynamics
only. Forces are read with ``apply_constraint=False``, since ``FixCom.adjust_forces`` (ASE >= 3.23)
subtracts m_i * lambda from what ``atoms.get_forces()`` returns, which makes labels that are not
-dE/dr. Before the file is written, every frame passes
:func:`equiscale.data.consistency.check_frames` (finite, zero net force) and three frames pass a
finite-difference check of F = -dE/dr with the same calculator; the figures go in the record.

Calculators (``--calculator``):

- ``xtb``: GFN2-xTB from ``tblite`` (``tblite.ase.TBLite``; ``pip install equiscale[md]``), for
  organic molecules (``--system`` any ``ase.build.molecule`` name, e.g. ``CH3CH2OH`` = ethanol).
- ``emt``: ASE's EMT, for metals (``--system`` ``Cu``, ``Al``, ``Ni``, ``Pd``, ``Ag``, ``Pt``,
  ``Au``: a periodic fcc supercell of ``--repeat`` cubic cells).

The output file (default ``data/md_<system>_<calculator>.extxyz``) is written atomically; the run
also writes ``<output>.json`` with the command, settings and wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from equiscale.data.consistency import check_finite_differences, check_frames
from equiscale.data.extxyz import Frame, write_extxyz

__all__ = ["add_arguments", "run", "build_system", "make_calculator", "generate", "frame_energy"]

METALS = ("Cu", "Al", "Ni", "Pd", "Ag", "Pt", "Au")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--system", default="CH3CH2OH", help="ase.build.molecule name (xtb) or fcc metal symbol (emt)"
    )
    parser.add_argument(
        "--calculator",
        default="xtb",
        choices=["xtb", "emt"],
        help="labels: xtb (GFN2-xTB, molecules) or emt (ASE's EMT, fcc metals)",
    )
    parser.add_argument("--frames", type=int, default=2000, help="frames to store")
    parser.add_argument("--interval", type=int, default=10, help="MD steps between stored frames")
    parser.add_argument("--equilibrate", type=int, default=200, help="MD steps before the first stored frame")
    parser.add_argument("--temperature", type=float, default=500.0, help="Langevin temperature (K)")
    parser.add_argument("--timestep", type=float, default=0.5, help="MD time step (fs)")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction (1/fs)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="cubic cells per side of the fcc supercell (emt)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the velocities, the Langevin noise and the finite-difference frames",
    )
    parser.add_argument(
        "--out", default=None, help="extxyz path (data/md_<system>_<calculator>.extxyz when not given)"
    )


def build_system(system: str, calculator: str, repeat: int = 2):
    """ASE Atoms for ``system`` (molecule name or fcc metal)."""
    from ase.build import bulk, molecule

    if calculator == "emt":
        if system not in METALS:
            raise ValueError(f"--system for emt must be one of {METALS}, got {system!r}")
        return bulk(system, "fcc", cubic=True).repeat((repeat, repeat, repeat))
    try:
        return molecule(system)
    except KeyError:
        raise ValueError(
            f"unknown molecule {system!r} (ase.build.molecule names, e.g. CH3CH2OH, H2O, C6H6)"
        ) from None


def make_calculator(calculator: str):
    """A fresh ASE calculator: tblite GFN2-xTB or EMT."""
    if calculator == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if calculator == "xtb":
        # one OpenMP thread: xTB on a small molecule is 5-100x slower when threads oversubscribe
        # the cores. tblite shares torch's OpenMP runtime, so torch's setting reaches it.
        import torch

        torch.set_num_threads(1)
        from tblite.ase import TBLite  # tblite is the md extra: pip install equiscale[md]

        # accuracy 0.01 (tblite's default is 1): SCF converged tightly enough that forces are
        # reproducible to ~2e-5 eV/A from any starting guess (1e-3 eV/A at the default)
        return TBLite(method="GFN2-xTB", verbosity=0, accuracy=0.01)
    raise ValueError(f"calculator must be 'xtb' or 'emt', got {calculator!r}")


def generate(
    atoms,
    calc,
    *,
    frames: int,
    interval: int,
    equilibrate: int,
    temperature: float,
    timestep: float,
    friction: float,
    seed: int,
) -> list[Frame]:
    """Langevin MD; returns ``frames`` labelled frames every ``interval`` steps."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(
        atoms,
        timestep * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    dyn.run(equilibrate)
    out = []
    for _ in range(frames):
        dyn.run(interval)
        out.append(
            Frame(
                z=atoms.numbers.copy(),
                pos=atoms.positions.copy(),
                energy=float(atoms.get_potential_energy()),
                forces=atoms.get_forces(apply_constraint=False).copy(),
                cell=atoms.cell.array.copy() if atoms.pbc.any() else None,
                pbc=atoms.pbc.copy(),
            )
        )
    return out


def frame_energy(frame: Frame, calc) -> float:
    """Energy (eV) of ``frame`` by ``calc`` (an ASE calculator), at the frame's positions."""
    from ase import Atoms

    atoms = Atoms(numbers=frame.z, positions=frame.pos, cell=frame.cell, pbc=frame.pbc)
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from equiscale.provenance import portable_path, write_record

    started = time.time()
    if args.frames < 1 or args.interval < 1:
        raise ValueError(f"--frames and --interval must be >= 1, got {args.frames}, {args.interval}")
    for name, value, low in (("timestep", args.timestep, 0.0), ("temperature", args.temperature, 0.0)):
        if not (np.isfinite(value) and value > low):
            raise ValueError(f"--{name} must be a finite number > 0, got {value}")
    if not (np.isfinite(args.friction) and args.friction >= 0) or args.equilibrate < 0:
        raise ValueError(
            f"--friction and --equilibrate must be >= 0, got {args.friction}, {args.equilibrate}"
        )
    atoms = build_system(args.system, args.calculator, args.repeat)
    frames = generate(
        atoms,
        make_calculator(args.calculator),
        frames=args.frames,
        interval=args.interval,
        equilibrate=args.equilibrate,
        temperature=args.temperature,
        timestep=args.timestep,
        friction=args.friction,
        seed=args.seed,
    )
    out = Path(args.out or f"data/md_{args.system}_{args.calculator}.extxyz")
    checks = check_frames(frames, source=str(out))
    fd_calc = make_calculator(args.calculator)
    checks["finite_difference_max_error_eV_per_A"] = check_finite_differences(
        frames, lambda f: frame_energy(f, fd_calc), source=str(out), seed=args.seed
    )
    write_extxyz(out, frames)
    energies = np.array([f.energy for f in frames])
    forces = np.concatenate([f.forces for f in frames])
    record = {
        "dataset": "md",
        "output": portable_path(out),
        "atoms": len(atoms),
        "frames": len(frames),
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "energy_eV": {"mean": float(energies.mean()), "std": float(energies.std())},
        "force_rms_eV_per_A": float(np.sqrt((forces**2).mean())),
        "checks": checks,
    }
    full = write_record(out.with_suffix(".json"), record, started=started)
    print(
        f"wrote {len(frames)} frames of {len(atoms)} atoms to {out} "
        f"(energy std {energies.std():.3f} eV, force rms {record['force_rms_eV_per_A']:.3f} eV/A, "
        f"{full.get('wall_time_s', 0):.0f} s)"
    )
    return full
