"""Constant-energy (NVE) molecular dynamics: total-energy drift of a trained model, beside a reference.

One summary for every engine (:func:`energy_summary`): from the total energy E(t) recorded every
``record_every`` steps,

    drift rate   = slope of the least-squares line through E(t)        (eV/ps, and per atom)
    drift        = E(t_end) - E(0)                                     (eV)
    fluctuation  = std_t E(t)                                          (eV)
    temperature  = 2 <K> / (n_dof k_B),  n_dof = 3N - n_constraints - n_removed

Engines:

- :func:`nve_drift`: ASE's ``VelocityVerlet`` with any calculator (an
  :class:`~equiscale.train.ase_calculator.EquiscaleCalculator` for a trained model); optional
  ``FixBondLengths`` constraints, which make the integrator RATTLE (positions and momenta
  projected onto the constraints every step). Velocities are given, or drawn from
  Maxwell-Boltzmann.
- :func:`openmm_nve`: OpenMM's own ``VerletIntegrator`` on an Amber system of
  :mod:`equiscale.data.protein` (vacuum, no cutoff), with its own constraint solver.

For a biomolecule both engines start from one :class:`ProteinStart`: positions and velocities of
a stored frame, projected once by OpenMM onto the H-bond constraints (``applyConstraints``,
``applyVelocityConstraints``) and with the centre-of-mass velocity removed, so both runs begin
in the same state with the same masses (the prmtop's) and the same constrained bond lengths.
The data of ``equiscale data protein`` are made with H bonds constrained, so a model trained on
them has never seen an X-H bond stretch: its dynamics must keep those constraints too.

Geometry checks (:func:`geometry_checks`) on the snapshots: the largest change of any bond length
of the topology from the start, the largest constraint violation, and the largest interatomic
distance (a molecule that flies apart shows there first).

``python -m equiscale.train.nve --checkpoint C`` runs both engines from the first test-split frame
of the checkpoint's own data set and writes one JSON record (``--out``; ``--plot``: a PNG of the
total energies beside it).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ProteinStart",
    "nve_drift",
    "energy_summary",
    "protein_start",
    "openmm_nve",
    "ase_nve",
    "geometry_checks",
    "main",
]

#: Boltzmann constant in eV/K (CODATA 2018, as ``ase.units.kB``)
KB_EV = 8.617333262e-5
#: 1 Da A^2 / ps^2 in eV (kinetic energy of A/ps velocities)
DA_A2_PS2_EV = 1.0364269656262175e-4
#: physical = largest bond-length change below this (A) and no pair further apart than the start
#: plus this (A)
MAX_BOND_CHANGE_A = 0.5
MAX_SPREAD_GROWTH_A = 5.0


def energy_summary(
    time_fs: list[float] | np.ndarray,
    potential_eV: list[float] | np.ndarray,
    kinetic_eV: list[float] | np.ndarray,
    n_atoms: int,
    dof: int,
) -> dict:
    """Drift (end minus start and least-squares rate), fluctuation and mean temperature of one
    NVE run (module docstring); energies in eV, times in fs, ``dof`` degrees of freedom."""
    t = np.asarray(time_fs, dtype=np.float64)
    epot, ekin = np.asarray(potential_eV, dtype=np.float64), np.asarray(kinetic_eV, dtype=np.float64)
    etot = epot + ekin
    if not (t.shape == epot.shape == ekin.shape and t.ndim == 1 and len(t) >= 1):
        raise ValueError(f"time, potential and kinetic must be equal 1-d arrays, got {t.shape}, {epot.shape}")
    slope = float(np.polyfit(t / 1000.0, etot, 1)[0]) if len(t) > 1 else 0.0
    drift = float(etot[-1] - etot[0])
    return {
        "drift_eV": drift,
        "drift_eV_per_atom": drift / n_atoms,
        "drift_rate_eV_per_ps": slope,
        "drift_rate_eV_per_atom_per_ps": slope / n_atoms,
        "drift_rate_meV_per_atom_per_ps": 1e3 * slope / n_atoms,
        "total_energy_std_eV": float(etot.std()),
        "total_energy_std_meV_per_atom": 1e3 * float(etot.std()) / n_atoms,
        "potential_energy_std_eV": float(epot.std()),
        "mean_temperature_K": float(ekin.mean() / (0.5 * dof * KB_EV)),
        "degrees_of_freedom": int(dof),
        "time_fs": t.tolist(),
        "total_energy_eV": etot.tolist(),
        "potential_energy_eV": epot.tolist(),
        "kinetic_energy_eV": ekin.tolist(),
    }


def nve_drift(
    atoms,
    calc,
    *,
    temperature: float = 300.0,
    timestep_fs: float = 0.5,
    steps: int = 2000,
    record_every: int = 10,
    seed: int = 0,
    velocities: np.ndarray | None = None,
    constraints: list | None = None,
    dof: int | None = None,
    snapshots: list | None = None,
) -> dict:
    """ASE velocity-Verlet NVE; total-energy drift and fluctuation (:func:`energy_summary`).

    Velocities: ``velocities [N, 3]`` (A/ps) as given, or, when None, Maxwell-Boltzmann at
    ``temperature`` (K) with the centre-of-mass motion and rotation removed (``seed``).
    ``constraints``: ASE constraints set on the atoms (``FixBondLengths`` makes the integrator
    RATTLE). ``dof``: degrees of freedom of the temperature (3N when None). Energies are
    recorded every ``record_every`` steps (and positions appended to ``snapshots``, a list, when
    given); the calculator's energy is read with ``get_potential_energy``, which constraints do
    not change (they change ``get_forces``).
    """
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    for name, value in (("steps", steps), ("record_every", record_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    atoms = atoms.copy()
    atoms.calc = calc
    if constraints:
        atoms.set_constraint(constraints)
    if velocities is None:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        Stationary(atoms)
        ZeroRotation(atoms)
    else:
        atoms.set_velocities(np.asarray(velocities, dtype=np.float64) / (1000.0 * units.fs))
    dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    t, epot, ekin = [], [], []

    def record():
        t.append(dyn.nsteps * timestep_fs)
        epot.append(float(atoms.get_potential_energy()))
        ekin.append(float(atoms.get_kinetic_energy()))
        if snapshots is not None:
            snapshots.append(atoms.get_positions().copy())

    dyn.attach(record, interval=record_every)
    started = time.perf_counter()
    dyn.run(steps)
    seconds = time.perf_counter() - started
    n = len(atoms)
    return {
        "engine": "ase-velocity-verlet" + ("-rattle" if constraints else ""),
        "atoms": n,
        "steps": steps,
        "timestep_fs": timestep_fs,
        "duration_ps": steps * timestep_fs / 1000,
        "temperature_K": temperature,
        "seconds": seconds,
        "seconds_per_step": seconds / steps,
        **energy_summary(t, epot, ekin, n, 3 * n if dof is None else dof),
    }


# ----------------------------------------------------------------------------- biomolecules


@dataclass
class ProteinStart:
    """One state of an Amber system of :mod:`equiscale.data.protein`, projected onto its
    constraints: ``pos [N, 3]`` (A), ``vel [N, 3]`` (A/ps), ``masses [N]`` (Da, the prmtop's),
    ``z [N]``, ``constraints [M, 2]`` atom pairs and their ``lengths [M]`` (A), ``bonds [K, 2]``
    (every bond of the topology), the OpenMM ``system`` (CM motion remover taken out) and
    ``prmtop``."""

    system_name: str
    pos: np.ndarray
    vel: np.ndarray
    masses: np.ndarray
    z: np.ndarray
    constraints: np.ndarray
    lengths: np.ndarray
    bonds: np.ndarray
    system: object
    prmtop: object

    @property
    def dof(self) -> int:
        """3N - constraints - 3 (the centre-of-mass momentum is zero and conserved)."""
        return 3 * len(self.z) - len(self.constraints) - 3


def _nve_system(prmtop, constraints: str):
    """The prmtop's vacuum system without ``CMMotionRemover`` (which rescales velocities between
    steps: not part of a Hamiltonian flow)."""
    import openmm as mm

    from equiscale.data.protein import build_system

    system = build_system(prmtop, constraints)
    for k in reversed(range(system.getNumForces())):
        if isinstance(system.getForce(k), mm.CMMotionRemover):
            system.removeForce(k)
    return system


def protein_start(
    system_name: str,
    pos_A: np.ndarray,
    vel_A_per_ps: np.ndarray,
    *,
    constraints: str = "hbonds",
    tolerance: float = 1e-10,
) -> ProteinStart:
    """The state ``(pos_A, vel_A_per_ps)`` of ``system_name`` with the centre-of-mass velocity
    removed, then projected by OpenMM (Reference platform) onto the constraints to relative
    ``tolerance``: positions first, then velocities."""
    import openmm as mm
    from openmm import unit

    from equiscale.data.protein import NM_PER_A, load_structure

    prmtop, _ = load_structure(system_name)
    system = _nve_system(prmtop, constraints)
    n = system.getNumParticles()
    pos, vel = np.asarray(pos_A, dtype=np.float64), np.asarray(vel_A_per_ps, dtype=np.float64)
    if pos.shape != (n, 3) or vel.shape != (n, 3):
        raise ValueError(f"pos and vel must be [{n}, 3] for {system_name}, got {pos.shape}, {vel.shape}")
    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(n)])
    vel = vel - (masses[:, None] * vel).sum(0) / masses.sum()
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setPositions(pos * NM_PER_A)
    context.setVelocities(vel * NM_PER_A)
    context.applyConstraints(tolerance)
    context.applyVelocityConstraints(tolerance)
    state = context.getState(getPositions=True, getVelocities=True)
    pos = np.array(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) / NM_PER_A
    vel = (
        np.array(state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)) / NM_PER_A
    )
    pairs, lengths = [], []
    for k in range(system.getNumConstraints()):
        i, j, d = system.getConstraintParameters(k)
        pairs.append((i, j))
        lengths.append(d.value_in_unit(unit.nanometer) / NM_PER_A)
    bonds = [(b.atom1.index, b.atom2.index) for b in prmtop.topology.bonds()]
    z = np.array([a.element.atomic_number for a in prmtop.topology.atoms()], dtype=np.int64)
    return ProteinStart(
        system_name=system_name,
        pos=pos,
        vel=vel,
        masses=masses,
        z=z,
        constraints=np.array(pairs, dtype=np.int64).reshape(-1, 2),
        lengths=np.array(lengths, dtype=np.float64),
        bonds=np.array(bonds, dtype=np.int64).reshape(-1, 2),
        system=system,
        prmtop=prmtop,
    )


def geometry_checks(snapshots: list[np.ndarray], start: ProteinStart) -> dict:
    """Largest bond-length change from the start over all topology bonds, largest constraint
    violation, largest interatomic distance (start and maximum over the run), all in A; and
    ``physical``: bond changes below ``MAX_BOND_CHANGE_A`` and no pair further apart than the start
    plus ``MAX_SPREAD_GROWTH_A``, all positions finite."""
    traj = np.asarray(snapshots, dtype=np.float64)  # [S, N, 3]

    def lengths(pairs: np.ndarray) -> np.ndarray:
        return np.linalg.norm(traj[:, pairs[:, 0]] - traj[:, pairs[:, 1]], axis=-1)  # [S, P]

    bond = lengths(start.bonds)
    start_bond = np.linalg.norm(start.pos[start.bonds[:, 0]] - start.pos[start.bonds[:, 1]], axis=-1)
    bond_change = float(np.abs(bond - start_bond).max())
    violation = float(np.abs(lengths(start.constraints) - start.lengths).max()) if len(start.lengths) else 0.0
    spread = np.linalg.norm(traj[:, :, None] - traj[:, None, :], axis=-1).max(axis=(1, 2))  # [S]
    start_spread = float(np.linalg.norm(start.pos[:, None] - start.pos[None], axis=-1).max())
    finite = bool(np.isfinite(traj).all())
    return {
        "max_bond_length_change_A": bond_change,
        "max_constraint_violation_A": violation,
        "start_max_pair_distance_A": start_spread,
        "max_pair_distance_A": float(spread.max()),
        "physical": finite
        and bond_change < MAX_BOND_CHANGE_A
        and float(spread.max()) < start_spread + MAX_SPREAD_GROWTH_A,
    }


def openmm_nve(
    start: ProteinStart,
    *,
    timestep_fs: float = 1.0,
    steps: int = 1000,
    record_every: int = 10,
    platform: str = "Reference",
    tolerance: float = 1e-10,
    snapshots: list | None = None,
) -> dict:
    """OpenMM's ``VerletIntegrator`` (constraint tolerance ``tolerance``) from ``start``; energies
    are OpenMM's own (its kinetic energy of a leapfrog integrator is taken at the positions'
    time); summary as :func:`energy_summary` plus the geometry checks."""
    import openmm as mm
    from openmm import unit

    from equiscale.data.protein import KJ_PER_MOL_PER_EV, NM_PER_A

    for name, value in (("steps", steps), ("record_every", record_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    integrator = mm.VerletIntegrator(timestep_fs * unit.femtosecond)
    integrator.setConstraintTolerance(tolerance)
    props = {"Threads": "1"} if platform == "CPU" else {}
    context = mm.Context(start.system, integrator, mm.Platform.getPlatformByName(platform), props)
    context.setPositions(start.pos * NM_PER_A)
    context.setVelocities(start.vel * NM_PER_A)
    snaps = [] if snapshots is None else snapshots
    t, epot, ekin = [], [], []
    seconds = 0.0
    for k in range(0, steps + 1, record_every):
        if k:
            t0 = time.perf_counter()
            integrator.step(record_every)
            seconds += time.perf_counter() - t0
        state = context.getState(getEnergy=True, getPositions=True)
        t.append(k * timestep_fs)
        epot.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_MOL_PER_EV)
        ekin.append(state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_MOL_PER_EV)
        snaps.append(np.array(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) / NM_PER_A)
    done = (steps // record_every) * record_every
    if done < steps:
        integrator.step(steps - done)
    n = len(start.z)
    return {
        "engine": f"openmm-verlet ({platform})",
        "atoms": n,
        "steps": steps,
        "timestep_fs": timestep_fs,
        "duration_ps": steps * timestep_fs / 1000,
        "constraint_tolerance": tolerance,
        "seconds": seconds,
        "seconds_per_step": seconds / max(done, 1),
        **energy_summary(t, epot, ekin, n, start.dof),
        "geometry": geometry_checks(snaps, start),
    }


def ase_nve(
    start: ProteinStart,
    calc,
    *,
    timestep_fs: float = 1.0,
    steps: int = 1000,
    record_every: int = 10,
    snapshots: list | None = None,
) -> dict:
    """:func:`nve_drift` from ``start`` with ``calc``: the prmtop's masses, ``FixBondLengths`` on
    the start's constraint pairs at OpenMM's lengths (RATTLE, ASE's tolerance 1e-13)."""
    from ase import Atoms
    from ase.constraints import FixBondLengths

    atoms = Atoms(numbers=start.z, positions=start.pos, masses=start.masses)
    constraints = (
        [FixBondLengths(start.constraints, bondlengths=start.lengths.copy())] if len(start.lengths) else None
    )
    snaps = [] if snapshots is None else snapshots
    out = nve_drift(
        atoms,
        calc,
        timestep_fs=timestep_fs,
        steps=steps,
        record_every=record_every,
        velocities=start.vel,
        constraints=constraints,
        dof=start.dof,
        snapshots=snaps,
    )
    out.pop("temperature_K")  # not an input here: the velocities are the frame's
    out["geometry"] = geometry_checks(snaps, start)
    return out


# ----------------------------------------------------------------------------- command line


def _start_frame(cfg, frame: int | None) -> tuple[str, int, np.ndarray, np.ndarray, dict]:
    """System, frame index, positions and velocities of the checkpoint's data set (the first frame
    of its test block when ``frame`` is None) and the data set's settings."""
    from equiscale.data.cache import load_npz
    from equiscale.data.protein import REQUIRED, ProteinFrames, time_block_splits

    args = dict(cfg.data_args or {})
    data = ProteinFrames.from_arrays(load_npz(args["path"], required=REQUIRED))
    if frame is None:
        blocks = time_block_splits(
            len(data), args["n_train"], args["n_val"], args["n_test"], args.get("gap", 0)
        )
        frame = int(blocks[2][0])
    if not 0 <= frame < len(data):
        raise ValueError(f"--frame must lie in [0, {len(data)}), got {frame}")
    return data.meta["settings"]["system"], frame, data.pos[frame], data.vel[frame], data.meta["settings"]


def main(argv: list[str] | None = None) -> dict:
    """``python -m equiscale.train.nve --checkpoint C``: NVE of a model trained on ``equiscale data
    protein`` frames beside OpenMM's Verlet, from the same frame, with the data's constraints."""
    import shlex
    import sys

    import torch

    from equiscale.provenance import _git_commit, portable_path, write_record
    from equiscale.train.ase_calculator import EquiscaleCalculator
    from equiscale.train.trainer import load_checkpoint

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--checkpoint", required=True, help="an `equiscale train` checkpoint of task protein")
    parser.add_argument("--frame", type=int, default=None, help="start frame (default: first test frame)")
    parser.add_argument("--timesteps", type=float, nargs="+", default=[1.0, 0.5], help="fs")
    parser.add_argument("--duration", type=float, default=1.0, help="ps per run")
    parser.add_argument("--record-every", type=float, default=5.0, help="fs between recorded energies")
    parser.add_argument("--platform", default="Reference", choices=["Reference", "CPU"])
    parser.add_argument("--tolerance", type=float, default=1e-10, help="OpenMM constraint tolerance")
    parser.add_argument("--out", default="results/protein/nve.json")
    parser.add_argument("--plot", action="store_true", help="total energy against time, PNG beside --out")
    args = parser.parse_args(argv)
    started = time.time()
    _git_commit()  # the record names the code at start, whatever changes while the run goes on
    torch.set_num_threads(1)
    _, cfg = load_checkpoint(args.checkpoint)
    if cfg.task != "protein":
        raise ValueError(f"checkpoint {args.checkpoint} was trained on task {cfg.task!r}, not 'protein'")
    system, frame, pos, vel, data_settings = _start_frame(cfg, args.frame)
    constraints = data_settings.get("constraints", "hbonds")
    start = protein_start(system, pos, vel, constraints=constraints, tolerance=args.tolerance)
    calc = EquiscaleCalculator.from_checkpoint(args.checkpoint, dtype=torch.float64)
    runs: dict[str, dict] = {}
    for dt in args.timesteps:
        steps = int(round(args.duration * 1000 / dt))
        every = max(1, int(round(args.record_every / dt)))
        kw = dict(timestep_fs=dt, steps=steps, record_every=every)
        runs[f"openmm_{dt:g}fs"] = openmm_nve(start, platform=args.platform, tolerance=args.tolerance, **kw)
        runs[f"model_{dt:g}fs"] = ase_nve(start, calc, **kw)
    for name, r in runs.items():
        g = r["geometry"]
        print(
            f"{name}: {r['steps']} steps, drift {r['drift_rate_eV_per_ps']:+.2e} eV/ps "
            f"({r['drift_rate_meV_per_atom_per_ps']:+.3f} meV/atom/ps), total-energy std "
            f"{r['total_energy_std_eV']:.2e} eV, mean T {r['mean_temperature_K']:.0f} K, "
            f"max bond change {g['max_bond_length_change_A']:.3f} A, "
            f"{1e3 * r['seconds_per_step']:.2f} ms/step, physical {g['physical']}"
        )
    argv_used = sys.argv[1:] if argv is None else argv
    record = {
        "run_with": "python -m equiscale.train.nve " + " ".join(shlex.quote(a) for a in argv_used),
        "experiment": "nve_drift_vs_openmm",
        "system": system,
        "checkpoint": portable_path(args.checkpoint),
        "data": portable_path(cfg.data_args["path"]),
        "start_frame": frame,
        "start": {
            "atoms": len(start.z),
            "constraints": constraints,
            "constrained_pairs": len(start.lengths),
            "degrees_of_freedom": start.dof,
            "initial_kinetic_temperature_K": float(
                0.5 * (start.masses[:, None] * start.vel**2).sum() * DA_A2_PS2_EV / (0.5 * start.dof * KB_EV)
            ),
        },
        "settings": vars(args),
        "model_evaluation": "float64 (EquiscaleCalculator, forces = -dE/dr by autograd)",
        "runs": runs,
    }
    full = write_record(args.out, record, started=started)
    if args.plot:
        from pathlib import Path

        from equiscale.train.plots import plot_nve

        png = plot_nve(runs, Path(args.out).with_suffix(".png"), f"NVE, {system}, start frame {frame}")
        print(f"plot: {png}")
    return full


if __name__ == "__main__":
    main()
