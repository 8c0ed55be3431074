"""``equiscale data protein``: all-atom biomolecule frames labelled by OpenMM, forces split at r_c.

Structures are the Amber systems that ship inside the ``openmmtools`` wheel (its ``data/``
folder, read without importing ``openmmtools``); labels come from ``openmm`` (``pip install
equiscale[bio]``). Set-up: the prmtop's Amber force field in vacuum with no cutoff (full
Coulomb + Lennard-Jones between every pair of atoms), hydrogen bond lengths constrained
(``--constraints hbonds``, 2 fs steps) or free (``none``), Langevin dynamics
(``LangevinMiddleIntegrator``, ``--temperature`` K, ``--friction`` 1/ps) after a short energy
minimisation and ``--equilibrate`` steps; every ``--interval``-th step is stored.

Why vacuum: OpenMM's native GBSA-OBC costs an order of magnitude more per step than vacuum on
the CPU, the openmmtools implicit-solvent systems use a ``CustomGBForce`` that is slower still, and
a generalised-Born energy is many-body (Born radii depend on all atoms), so its force has no
exact split into pairs within and beyond a cutoff. In vacuum every non-bonded term is a pair term.

Units: positions A, energies eV, forces eV/A, charges e (OpenMM: nm, kJ/mol, kJ/mol/nm;
1 eV = 96.485332... kJ/mol).

Exact split of the force at a cutoff r_c (``--cutoff``, A). The potential is

    E = E_bonded + sum_{i<j, not excluded} e_ij(r_ij),
    e_ij(r) = k q_i q_j / r + 4 eps_ij ((sigma_ij / r)^12 - (sigma_ij / r)^6),

with Lorentz-Berthelot combination (sigma_ij = (sigma_i + sigma_j) / 2, eps_ij = sqrt(eps_i
eps_j)), k = 1 / (4 pi eps_0), and the prmtop's 1-4 pairs replaced by their own scaled parameters
(OpenMM "exceptions"; 1-2 and 1-3 pairs are excluded). The force on atom i splits as

    F_i = F_i^short + F_i^long,
    F_i^long  = -sum_{j: r_ij > r_c} d e_ij / d r_i                  (pairs beyond r_c)
    F_i^short = -dE_bonded / dr_i - sum_{j: r_ij <= r_c} d e_ij / d r_i

(bonded terms count as short-range). ``F^long`` is what a model that sees only atoms within r_c
of atom i cannot see. Both parts are computed independently and their sum is checked against
OpenMM's total:

- ``F^long``: a float64 pair sum in numpy (:func:`pair_forces`), O(N^2) in row blocks.
- ``F^short``: OpenMM (the Reference platform, float64, by default) on a copy of the system
  whose ``NonbondedForce`` is replaced by a ``CustomNonbondedForce`` (same per-atom parameters,
  exceptions excluded) and a ``CustomBondForce`` (the exceptions), both multiplied by
  ``step(r_c - r)``, no switching, no cutoff method.

Stored arrays (one ``.npz``, written atomically with a sha256 checksum, see
:mod:`equiscale.data.cache`), T frames of N atoms:

- ``pos [T, N, 3]`` (A), ``vel [T, N, 3]`` (A/ps; the integrator's velocities, which for
  ``LangevinMiddleIntegrator`` lag the positions by half a time step), ``energy [T]`` (eV),
  ``forces [T, N, 3]`` (eV/A, OpenMM's total), ``forces_short``, ``forces_long [T, N, 3]``,
  ``energy_short``, ``energy_long [T]``, ``time_ps [T]``;
- ``z [N]`` atomic numbers, ``charges [N]`` partial charges (e), ``residue_index [N]``,
  ``chain_index [N]``, ``atom_names [N]``, ``residue_names [N]``: atoms in the topology's order
  (chains, then residues in sequence order, as in the prmtop);
- ``cutoff`` (A), ``generation_seconds`` (all of it), ``md_seconds_per_step`` (the dynamics
  alone), ``settings_json`` and ``checks_json`` (figures of the
  consistency checks below).

Checks before anything is written (:class:`equiscale.data.consistency.DataConsistencyError`
otherwise): every frame finite, in eV/A and free of net force (total and both parts: each part is a
sum of pair forces, so it obeys Newton's third law); ``|F - F^short - F^long|`` within
``split_tol`` of zero; ``F = -dE/dr`` by central differences of the double-precision Reference
platform's energy at three frames.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from equiscale.data.cache import cache_dir as _cache_dir
from equiscale.data.cache import cached_arrays, save_npz
from equiscale.data.consistency import DataConsistencyError, check_finite_differences, check_frames
from equiscale.data.extxyz import Frame

__all__ = [
    "SYSTEMS",
    "ProteinFrames",
    "add_arguments",
    "run",
    "protein_frames",
    "generate",
    "pair_forces",
    "pair_forces_at",
    "coulomb_beyond",
    "nonbonded_parameters",
    "long_range_fraction",
    "time_block_splits",
    "openmm_forces",
    "load_structure",
    "build_system",
    "short_range_system",
]

#: name -> (folder in openmmtools/data, prmtop, coordinates); vacuum set-ups of these systems.
SYSTEMS: dict[str, tuple[str, str, str]] = {
    "alanine-dipeptide": ("alanine-dipeptide-gbsa", "alanine-dipeptide.prmtop", "alanine-dipeptide.crd"),
    "t4-lysozyme": ("T4-lysozyme-L99A-implicit", "receptor.prmtop", "receptor-minimized.crd"),
}
KJ_PER_MOL_PER_EV = 96.48533212331002  # N_A e / 1000 (CODATA 2018, exact)
NM_PER_A = 0.1
ONE_4PI_EPS0 = 138.93545764438198  # kJ/mol nm / e^2, OpenMM's value
PROTOCOL = "openmm-vacuum-v2"  # bump when the set-up or the arithmetic changes: it names cache files
FORCE_UNIT = 1.0 / (KJ_PER_MOL_PER_EV / NM_PER_A)  # kJ/mol/nm -> eV/A
REQUIRED = ("pos", "vel", "energy", "forces", "forces_short", "forces_long", "z", "charges", "residue_index")


#: the arrays a ProteinFrames holds and its cache file stores, by name
_ARRAYS = (
    "pos",
    "vel",
    "energy",
    "forces",
    "forces_short",
    "forces_long",
    "energy_short",
    "energy_long",
    "time_ps",
    "z",
    "charges",
    "residue_index",
    "chain_index",
    "atom_names",
    "residue_names",
)


@dataclass
class ProteinFrames:
    """Frames of one biomolecule (see the module docstring for the arrays and units).

    Attributes:
        pos, vel, forces, forces_short, forces_long: ``[T, N, 3]`` float64 (A, A/ps, eV/A).
        energy, energy_short, energy_long, time_ps: ``[T]`` float64 (eV, ps).
        z, charges, residue_index, chain_index: ``[N]`` per atom, topology order.
        atom_names, residue_names: ``[N]`` strings.
        cutoff: r_c (A) of the split.
        meta: settings, generation time and consistency-check figures.
    """

    pos: np.ndarray
    vel: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    forces_short: np.ndarray
    forces_long: np.ndarray
    energy_short: np.ndarray
    energy_long: np.ndarray
    time_ps: np.ndarray
    z: np.ndarray
    charges: np.ndarray
    residue_index: np.ndarray
    chain_index: np.ndarray
    atom_names: np.ndarray
    residue_names: np.ndarray
    cutoff: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.pos.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.pos.shape[1]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ProteinFrames:
        """From the arrays of a file written by :func:`protein_frames` or ``equiscale data protein``."""
        missing = [k for k in REQUIRED if k not in arrays]
        if missing:
            raise ValueError(f"protein data lacks arrays {missing}")
        meta = {
            "settings": json.loads(str(arrays.get("settings_json", "{}"))),
            "checks": json.loads(str(arrays.get("checks_json", "{}"))),
            "generation_seconds": float(arrays.get("generation_seconds", np.nan)),
            "md_seconds_per_step": float(arrays.get("md_seconds_per_step", np.nan)),
        }
        return cls(**{k: arrays[k] for k in _ARRAYS}, cutoff=float(arrays["cutoff"]), meta=meta)


# ----------------------------------------------------------------------------- structures


def _data_dir() -> Path:
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "openmmtools is not installed (pip install equiscale[bio]): the protein "
            "structures come from its wheel"
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def load_structure(system: str):
    """``(prmtop, positions [N, 3] nm)`` of a system in :data:`SYSTEMS` (``openmm.app`` objects)."""
    from openmm import app, unit

    if not isinstance(system, str) or system not in SYSTEMS:
        raise ValueError(f"system must be one of {sorted(SYSTEMS)}, got {system!r}")
    folder, top, crd = SYSTEMS[system]
    base = _data_dir() / folder
    prmtop = app.AmberPrmtopFile(str(base / top))
    pos = app.AmberInpcrdFile(str(base / crd)).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return prmtop, np.array(pos, dtype=np.float64)


def build_system(prmtop, constraints: str = "hbonds"):
    """The prmtop's force field in vacuum, no cutoff (``openmm.System``); ``constraints``: "hbonds"
    or "none"."""
    from openmm import app

    if constraints not in ("hbonds", "none"):
        raise ValueError(f"constraints must be 'hbonds' or 'none', got {constraints!r}")
    return prmtop.createSystem(
        nonbondedMethod=app.NoCutoff,
        implicitSolvent=None,
        constraints=app.HBonds if constraints == "hbonds" else None,
        rigidWater=constraints == "hbonds",
        removeCMMotion=True,
    )


def _nonbonded_force(system):
    import openmm as mm

    found = [f for f in system.getForces() if isinstance(f, mm.NonbondedForce)]
    if len(found) != 1:
        raise ValueError(f"expected one NonbondedForce in the system, found {len(found)}")
    nb = found[0]
    if nb.getNonbondedMethod() != mm.NonbondedForce.NoCutoff:
        raise ValueError("the exact short/long split needs a NonbondedForce with NoCutoff")
    return nb


def nonbonded_parameters(system) -> dict[str, np.ndarray]:
    """Per-atom ``charge [N]`` (e), ``sigma [N]`` (nm), ``epsilon [N]`` (kJ/mol) and the exceptions
    ``exc_i, exc_j [M]`` (atom pairs), ``exc_qq, exc_sigma, exc_eps [M]`` of the system's
    ``NonbondedForce`` (an excluded pair is an exception with qq = eps = 0)."""
    from openmm import unit

    nb = _nonbonded_force(system)
    n = nb.getNumParticles()
    q, s, e = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        qi, si, ei = nb.getParticleParameters(i)
        q[i] = qi.value_in_unit(unit.elementary_charge)
        s[i] = si.value_in_unit(unit.nanometer)
        e[i] = ei.value_in_unit(unit.kilojoule_per_mole)
    m = nb.getNumExceptions()
    ei_, ej_ = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    qq, es, ee = np.zeros(m), np.zeros(m), np.zeros(m)
    for k in range(m):
        i, j, qqk, sk, ek = nb.getExceptionParameters(k)
        ei_[k], ej_[k] = i, j
        qq[k] = qqk.value_in_unit(unit.elementary_charge**2)
        es[k] = sk.value_in_unit(unit.nanometer)
        ee[k] = ek.value_in_unit(unit.kilojoule_per_mole)
    return {
        "charge": q,
        "sigma": s,
        "epsilon": e,
        "exc_i": ei_,
        "exc_j": ej_,
        "exc_qq": qq,
        "exc_sigma": es,
        "exc_eps": ee,
    }


def _pair_terms(
    r: np.ndarray, qq: np.ndarray, sig: np.ndarray, eps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pair energy e(r) and -de/dr / r (so that the force on i is that times (r_i - r_j))."""
    inv_r = 1.0 / r
    s6 = (sig * inv_r) ** 6
    s12 = s6 * s6
    coul = ONE_4PI_EPS0 * qq * inv_r
    energy = coul + 4.0 * eps * (s12 - s6)
    f_over_r = (coul + 4.0 * eps * (12.0 * s12 - 6.0 * s6)) * inv_r * inv_r
    return energy, f_over_r


def pair_forces(
    pos_nm: np.ndarray, params: dict[str, np.ndarray], cutoff_nm: float, side: str = "long", block: int = 256
) -> tuple[float, np.ndarray]:
    """Non-bonded energy (kJ/mol) and forces ``[N, 3]`` (kJ/mol/nm) of the pairs beyond
    (``side="long"``: r_ij > r_c) or within (``"short"``: r_ij <= r_c) ``cutoff_nm``, in float64.

    Sums e_ij(r_ij) over unordered pairs (exceptions with their own parameters, excluded pairs
    left out); forces F_i = -sum_j de_ij/dr_i. O(N^2) time, O(block N) memory.
    """
    return pair_forces_at(pos_nm, params, [cutoff_nm], side, block)[0]


def pair_forces_at(
    pos_nm: np.ndarray,
    params: dict[str, np.ndarray],
    cutoffs_nm: list[float],
    side: str = "long",
    block: int = 256,
) -> list[tuple[float, np.ndarray]]:
    """:func:`pair_forces` at several cutoffs in one pass over the pairs: ``[(energy, forces)]``,
    one per cutoff, in the order given."""
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    for rc in cutoffs_nm:
        if not (np.isfinite(rc) and rc > 0):
            raise ValueError(f"cutoff_nm must be a finite number > 0, got {rc!r}")
    pos = np.asarray(pos_nm, dtype=np.float64)
    n = pos.shape[0]
    q, sg, ep = params["charge"], params["sigma"], params["epsilon"]
    ei, ej = params["exc_i"], params["exc_j"]
    forces = [np.zeros((n, 3)) for _ in cutoffs_nm]
    energy = [0.0 for _ in cutoffs_nm]

    def on_side(r: np.ndarray, rc: float) -> np.ndarray:
        return r > rc if side == "long" else r <= rc

    # regular pairs: full rows (j over all atoms), masking i == j and exception pairs; each
    # unordered pair is met twice, so the energy takes half
    exc_rows = np.concatenate([ei, ej])
    exc_cols = np.concatenate([ej, ei])
    for start in range(0, n, block):
        stop = min(start + block, n)
        d = pos[start:stop, None, :] - pos[None, :, :]  # [B, N, 3]  r_i - r_j
        r = np.sqrt((d * d).sum(-1))  # [B, N]
        pair = np.ones_like(r, dtype=bool)
        pair[np.arange(stop - start), np.arange(start, stop)] = False
        sel = (exc_rows >= start) & (exc_rows < stop)
        pair[exc_rows[sel] - start, exc_cols[sel]] = False
        qq = q[start:stop, None] * q[None, :]  # [B, N]
        sig = 0.5 * (sg[start:stop, None] + sg[None, :])
        eps = np.sqrt(ep[start:stop, None] * ep[None, :])
        e, f = _pair_terms(np.where(pair, r, 1.0), qq, sig, eps)
        for k, rc in enumerate(cutoffs_nm):
            keep = pair & on_side(r, rc)
            energy[k] += 0.5 * float(np.where(keep, e, 0.0).sum())
            forces[k][start:stop] += np.einsum("bn,bnc->bc", np.where(keep, f, 0.0), d)
    # exceptions (1-4 pairs with scaled parameters), once per pair
    d = pos[ei] - pos[ej]  # [M, 3]
    r = np.sqrt((d * d).sum(-1))
    active = (params["exc_qq"] != 0) | (params["exc_eps"] != 0)
    e, f = _pair_terms(np.where(active, r, 1.0), params["exc_qq"], params["exc_sigma"], params["exc_eps"])
    for k, rc in enumerate(cutoffs_nm):
        keep = active & on_side(r, rc)
        ek, fk = np.where(keep, e, 0.0), np.where(keep, f, 0.0)
        energy[k] += float(ek.sum())
        np.add.at(forces[k], ei, fk[:, None] * d)
        np.add.at(forces[k], ej, -fk[:, None] * d)
    return list(zip(energy, forces))


def coulomb_beyond(pos_A: np.ndarray, charges: np.ndarray, cutoff_A: float, block: int = 256) -> np.ndarray:
    """Coulomb forces ``[N, 3]`` (eV/A) of the point charges ``charges`` (e) on each other, over the
    pairs farther apart than ``cutoff_A``, in float64: F_i = k_e sum_{j: r_ij > r_c} q_i q_j
    (r_i - r_j) / r_ij^3, O(N^2) time, O(block N) memory.

    With the force field's own charges this is the Coulomb part of ``forces_long`` as long as no
    excluded or scaled (1-2, 1-3, 1-4) pair is farther apart than r_c (so for r_c >= 4 A); the
    rest is the Lennard-Jones tail beyond r_c. It is what a global term of learned charges could
    reach at best, and a physics check of the labels' long-range part."""
    if not (np.isfinite(cutoff_A) and cutoff_A > 0):
        raise ValueError(f"cutoff_A must be a finite number > 0, got {cutoff_A!r}")
    pos = np.asarray(pos_A, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or q.shape != pos.shape[:1]:
        raise ValueError(f"pos_A must be [N, 3] and charges [N], got {pos.shape} and {q.shape}")
    k_e = ONE_4PI_EPS0 / KJ_PER_MOL_PER_EV / NM_PER_A  # kJ/mol nm / e^2 -> eV A / e^2 (14.3996)
    out = np.zeros_like(pos)
    for start in range(0, len(pos), block):
        stop = min(start + block, len(pos))
        d = pos[start:stop, None, :] - pos[None, :, :]  # [B, N, 3]
        r = np.sqrt((d * d).sum(-1))
        far = r > cutoff_A  # i == j has r = 0: never far
        w = np.where(far, q[start:stop, None] * q[None, :] / np.where(far, r, 1.0) ** 3, 0.0)
        out[start:stop] = k_e * np.einsum("bn,bnc->bc", w, d)
    return out


def short_range_system(system, cutoff_nm: float):
    """A copy of ``system`` whose non-bonded pairs act only within ``cutoff_nm``: the
    ``NonbondedForce`` is replaced by a ``CustomNonbondedForce`` (regular pairs) and a
    ``CustomBondForce`` (exceptions), both ``step(r_c - r) e_ij(r)`` with the same parameters,
    no cutoff method and no switching. Bonded forces are kept unchanged."""
    import openmm as mm

    params = nonbonded_parameters(system)
    copy = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    index = [k for k, f in enumerate(copy.getForces()) if isinstance(f, mm.NonbondedForce)]
    copy.removeForce(index[0])
    pair = f"step({cutoff_nm!r} - r) * ({ONE_4PI_EPS0!r} * qq / r + 4 * eps * ((sig / r)^12 - (sig / r)^6))"
    custom = mm.CustomNonbondedForce(
        pair + "; qq = q1 * q2; sig = 0.5 * (sigma1 + sigma2); eps = sqrt(epsilon1 * epsilon2)"
    )
    for name in ("q", "sigma", "epsilon"):
        custom.addPerParticleParameter(name)
    custom.setNonbondedMethod(mm.CustomNonbondedForce.NoCutoff)
    custom.setUseSwitchingFunction(False)
    custom.setUseLongRangeCorrection(False)
    for q, s, e in zip(params["charge"], params["sigma"], params["epsilon"]):
        custom.addParticle([q, s, e])
    bond = mm.CustomBondForce(pair)
    for name in ("qq", "sig", "eps"):
        bond.addPerBondParameter(name)
    for i, j, qq, s, e in zip(
        params["exc_i"], params["exc_j"], params["exc_qq"], params["exc_sigma"], params["exc_eps"]
    ):
        custom.addExclusion(int(i), int(j))
        if qq != 0 or e != 0:
            bond.addBond(int(i), int(j), [qq, s, e])
    copy.addForce(custom)
    copy.addForce(bond)
    return copy


def _context(system, platform: str, threads: int, integrator=None):
    import openmm as mm

    if platform not in ("CPU", "Reference"):
        raise ValueError(f"platform must be 'CPU' or 'Reference', got {platform!r}")
    integrator = integrator or mm.VerletIntegrator(0.001)
    props = {"Threads": str(threads)} if platform == "CPU" else {}
    return mm.Context(system, integrator, mm.Platform.getPlatformByName(platform), props)


def openmm_forces(context, pos_A: np.ndarray) -> tuple[float, np.ndarray]:
    """Potential energy (eV) and forces ``[N, 3]`` (eV/A) of ``context`` at ``pos_A`` (A)."""
    from openmm import unit

    context.setPositions(np.asarray(pos_A, dtype=np.float64) * NM_PER_A)
    state = context.getState(getEnergy=True, getForces=True)
    e = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_MOL_PER_EV
    f = np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
    return float(e), np.array(f, dtype=np.float64) * FORCE_UNIT


def long_range_fraction(
    pos_A: np.ndarray,
    forces: np.ndarray,
    params: dict[str, np.ndarray],
    cutoffs: list[float],
    max_frames: int | None = 50,
) -> dict[str, dict[str, float]]:
    """Per r_c (A): ``rms_ratio`` = ||F^long|| / ||F|| (Frobenius norms over the frames and atoms),
    ``mean_ratio`` = mean_i |F_i^long| / mean_i |F_i|, and ``mean_long`` = mean_i |F_i^long| (eV/A).

    ``pos_A [T, N, 3]``, ``forces [T, N, 3]`` (total, eV/A); at most ``max_frames`` frames, evenly
    spaced along the trajectory, are used (all with None).
    """
    t = pos_A.shape[0]
    pick = np.arange(t)
    if max_frames is not None and t > max_frames:
        pick = np.linspace(0, t - 1, max_frames).round()
    pick = np.unique(pick.astype(np.int64))
    norm_total = np.linalg.norm(forces[pick], axis=-1)  # [T', N]
    longs = [
        pair_forces_at(pos_A[k] * NM_PER_A, params, [rc * NM_PER_A for rc in cutoffs], "long") for k in pick
    ]
    out = {}
    for c, rc in enumerate(cutoffs):
        norm_long = np.linalg.norm(np.stack([lf[c][1] for lf in longs]) * FORCE_UNIT, axis=-1)
        out[f"{rc:g}"] = {
            "rms_ratio": float(np.sqrt((norm_long**2).sum() / (norm_total**2).sum())),
            "mean_ratio": float(norm_long.mean() / norm_total.mean()),
            "mean_long": float(norm_long.mean()),
            "frames": int(len(pick)),
        }
    return out


# ----------------------------------------------------------------------------- generation


def _topology_arrays(prmtop) -> dict[str, np.ndarray]:
    atoms = list(prmtop.topology.atoms())
    if any(a.element is None for a in atoms):
        raise ValueError("the topology has atoms without an element (virtual sites are not supported)")
    return {
        "z": np.array([a.element.atomic_number for a in atoms], dtype=np.int64),
        "residue_index": np.array([a.residue.index for a in atoms], dtype=np.int64),
        "chain_index": np.array([a.residue.chain.index for a in atoms], dtype=np.int64),
        "atom_names": np.array([a.name for a in atoms], dtype="U8"),
        "residue_names": np.array([a.residue.name for a in atoms], dtype="U8"),
    }


def _check_settings(
    frames: int,
    interval: int,
    equilibrate: int,
    temperature: float,
    timestep: float,
    friction: float,
    cutoff: float,
    threads: int,
) -> None:
    for name, value, low in (
        ("frames", frames, 1),
        ("interval", interval, 1),
        ("equilibrate", equilibrate, 0),
        ("threads", threads, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    for name, value in (("temperature", temperature), ("timestep", timestep), ("cutoff", cutoff)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not (isinstance(friction, (int, float)) and np.isfinite(friction) and friction >= 0):
        raise ValueError(f"friction must be a finite number >= 0, got {friction!r}")


def generate(
    system: str = "alanine-dipeptide",
    *,
    frames: int = 100,
    interval: int = 50,
    equilibrate: int = 500,
    temperature: float = 300.0,
    timestep: float = 2.0,
    friction: float = 1.0,
    cutoff: float = 5.0,
    constraints: str = "hbonds",
    platform: str = "CPU",
    label_platform: str = "Reference",
    threads: int = 1,
    seed: int = 0,
    split_tol: float = 1e-6,
    fd_tol: float = 1e-3,
) -> dict[str, np.ndarray]:
    """Run Langevin MD and label ``frames`` frames; returns the arrays of the module docstring.

    The dynamics runs on ``platform``; energies and forces (total and short-range) are computed
    at the stored positions on ``label_platform`` ("Reference": double precision throughout, so
    short + long = total to ~1e-12 eV/A; "CPU": mixed precision, ~1e-3 eV/A).
    ``timestep`` in fs, ``friction`` in 1/ps, ``cutoff`` r_c in A. ``split_tol`` (eV/A): largest
    allowed |F - F^short - F^long|.
    ``fd_tol`` (eV/A): tolerance of the finite-difference check. Raises
    :class:`~equiscale.data.consistency.DataConsistencyError` when a check fails.
    """
    import openmm as mm
    from openmm import unit

    _check_settings(frames, interval, equilibrate, temperature, timestep, friction, cutoff, threads)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    for name, value in (("platform", platform), ("label_platform", label_platform)):
        if value not in ("CPU", "Reference"):
            raise ValueError(f"{name} must be 'CPU' or 'Reference', got {value!r}")
    started = time.perf_counter()
    prmtop, pos0 = load_structure(system)
    omm_system = build_system(prmtop, constraints)
    params = nonbonded_parameters(omm_system)
    topo = _topology_arrays(prmtop)
    integrator = mm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, friction / unit.picosecond, timestep * unit.femtosecond
    )
    integrator.setRandomNumberSeed(seed + 1)  # OpenMM reads seed 0 as "pick one at random"
    md = _context(omm_system, platform, threads, integrator)
    md.setPositions(pos0)
    mm.LocalEnergyMinimizer.minimize(md, 1.0, 200)
    md.setVelocitiesToTemperature(temperature * unit.kelvin, seed + 1)
    if equilibrate:
        integrator.step(equilibrate)
    label = _context(omm_system, label_platform, threads)
    short = _context(short_range_system(omm_system, cutoff * NM_PER_A), label_platform, threads)
    out: dict[str, list] = {
        k: []
        for k in (
            "pos",
            "vel",
            "energy",
            "forces",
            "forces_short",
            "energy_short",
            "forces_long",
            "energy_long",
            "time_ps",
        )
    }
    md_seconds = 0.0
    for _ in range(frames):
        t0 = time.perf_counter()
        integrator.step(interval)
        md_seconds += time.perf_counter() - t0
        state = md.getState(getPositions=True, getVelocities=True)
        pos = np.array(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
        vel = np.array(state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond))
        e_tot, f_tot = openmm_forces(label, pos / NM_PER_A)
        e_short, f_short = openmm_forces(short, pos / NM_PER_A)
        e_long, f_long = pair_forces(pos, params, cutoff * NM_PER_A, "long")
        out["pos"].append(pos / NM_PER_A)
        out["vel"].append(vel / NM_PER_A)
        out["energy"].append(e_tot)
        out["forces"].append(f_tot)
        out["forces_short"].append(f_short)
        out["energy_short"].append(e_short)
        out["forces_long"].append(f_long * FORCE_UNIT)
        out["energy_long"].append(e_long / KJ_PER_MOL_PER_EV)
        out["time_ps"].append(state.getTime().value_in_unit(unit.picosecond))
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    checks = check_protein_arrays(arrays, system=system, split_tol=split_tol)
    reference = label if label_platform == "Reference" else _context(omm_system, "Reference", 1)
    frame_list = [
        Frame(z=topo["z"], pos=p, energy=float(e), forces=f)
        for p, e, f in zip(arrays["pos"], arrays["energy"], arrays["forces"])
    ]
    checks["finite_difference_max_error_eV_per_A"] = check_finite_differences(
        frame_list,
        lambda fr: openmm_forces(reference, fr.pos)[0],
        step=1e-3,
        tol=fd_tol,
        seed=seed,
        source=system,
    )
    seconds = time.perf_counter() - started
    settings = {
        "system": system,
        "frames": frames,
        "interval": interval,
        "equilibrate": equilibrate,
        "temperature_K": temperature,
        "timestep_fs": timestep,
        "friction_per_ps": friction,
        "cutoff_A": cutoff,
        "constraints": constraints,
        "platform": platform,
        "label_platform": label_platform,
        "threads": threads,
        "seed": seed,
        "protocol": PROTOCOL,
        "solvent": "vacuum",
        "nonbonded": "NoCutoff",
    }
    return {
        **arrays,
        **topo,
        "charges": params["charge"],
        "cutoff": np.array(float(cutoff)),
        "generation_seconds": np.array(seconds),
        "md_seconds_per_step": np.array(md_seconds / (frames * interval)),
        "settings_json": np.array(json.dumps(settings)),
        "checks_json": np.array(json.dumps(checks)),
    }


def check_protein_arrays(
    arrays: dict[str, np.ndarray],
    *,
    system: str = "data",
    split_tol: float = 1e-6,
    net_force_tol: float = 0.05,
) -> dict[str, float]:
    """Finite, eV/A-plausible, net-force-free frames (total, short and long parts) and
    max |F - F^short - F^long| <= ``split_tol`` (eV/A); returns the figures. Raises
    :class:`~equiscale.data.consistency.DataConsistencyError` naming the failing check."""
    pos, forces = arrays["pos"], arrays["forces"]
    z = np.zeros(pos.shape[1], dtype=np.int64)
    checks = check_frames(
        [Frame(z=z, pos=p, energy=float(e), forces=f) for p, e, f in zip(pos, arrays["energy"], forces)],
        source=system,
        net_force_tol=net_force_tol,
    )
    for part in ("forces_short", "forces_long"):
        part_checks = check_frames(
            [Frame(z=z, pos=p, forces=f) for p, f in zip(pos, arrays[part])],
            source=f"{system} {part}",
            net_force_tol=net_force_tol,
        )
        checks[f"{part}_max_net_force_eV_per_A"] = part_checks["max_net_force_eV_per_A"]
    split = float(np.abs(forces - arrays["forces_short"] - arrays["forces_long"]).max())
    if not split <= split_tol:
        raise DataConsistencyError(
            f"{system}: |F - F_short - F_long| reaches {split:.3g} eV/A "
            f"(tolerance {split_tol:g}): the short/long split does not add up"
        )
    checks["split_max_error_eV_per_A"] = split
    if "energy_short" in arrays:
        checks["split_energy_max_error_eV"] = float(
            np.abs(arrays["energy"] - arrays["energy_short"] - arrays["energy_long"]).max()
        )
    return checks


def _settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def protein_frames(
    system: str = "alanine-dipeptide",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    **settings: Any,
) -> ProteinFrames:
    """Labelled frames of ``system`` (see :func:`generate` for ``settings``), from the on-disk
    cache when present and intact (sha256 checked; a corrupt file is reported and rebuilt),
    else generated and stored atomically under ``<cache_dir>/protein/``."""
    if not isinstance(system, str) or system not in SYSTEMS:
        raise ValueError(f"system must be one of {sorted(SYSTEMS)}, got {system!r}")
    if cache:
        key = {"system": system, "protocol": PROTOCOL, **settings}
        path = _cache_dir(cache_dir) / "protein" / f"{PROTOCOL}-{system}-{_settings_digest(key)}.npz"
        arrays = cached_arrays(path, lambda: generate(system, **settings), required=REQUIRED)
    else:
        if cache_dir is not None:
            raise ValueError("cache_dir was given but cache=False; pass one or the other")
        arrays = generate(system, **settings)
    return ProteinFrames.from_arrays(arrays)


def time_block_splits(n_frames: int, n_train: int, n_val: int, n_test: int, gap: int = 0) -> list[np.ndarray]:
    """Contiguous time blocks ``[train, val, test]`` of frame indices, in this order along the
    trajectory, with ``gap`` frames left out between blocks (neighbouring frames are correlated)."""
    for name, value, low in (
        ("n_train", n_train, 1),
        ("n_val", n_val, 1),
        ("n_test", n_test, 1),
        ("gap", gap, 0),
        ("n_frames", n_frames, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    need = n_train + n_val + n_test + 2 * gap
    if need > n_frames:
        raise ValueError(f"n_train + n_val + n_test + 2 * gap = {need} exceeds the {n_frames} frames")
    starts = [0, n_train + gap, n_train + n_val + 2 * gap]
    return [np.arange(s, s + n) for s, n in zip(starts, (n_train, n_val, n_test))]


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``equiscale data protein``."""
    parser.add_argument(
        "--system",
        default="alanine-dipeptide",
        choices=sorted(SYSTEMS),
        help="structure from the openmmtools wheel (vacuum, no cutoff)",
    )
    parser.add_argument("--frames", type=int, default=200, help="frames to store")
    parser.add_argument("--interval", type=int, default=50, help="MD steps between stored frames")
    parser.add_argument("--equilibrate", type=int, default=500, help="MD steps before the first frame")
    parser.add_argument("--temperature", type=float, default=300.0, help="Langevin temperature (K)")
    parser.add_argument("--timestep", type=float, default=2.0, help="time step (fs)")
    parser.add_argument("--friction", type=float, default=1.0, help="Langevin friction (1/ps)")
    parser.add_argument("--cutoff", type=float, default=5.0, help="r_c of the short/long force split (A)")
    parser.add_argument(
        "--fraction-cutoffs",
        type=float,
        nargs="*",
        default=[4.0, 6.0, 8.0, 10.0, 12.0],
        help="further r_c (A) at which the long-range force fraction is reported",
    )
    parser.add_argument(
        "--fraction-frames",
        type=int,
        default=50,
        help="frames (evenly spaced) over which the long-range fractions are measured",
    )
    parser.add_argument(
        "--constraints",
        default="hbonds",
        choices=["hbonds", "none"],
        help="constrain bonds to hydrogen (2 fs steps) or not (use ~1 fs)",
    )
    parser.add_argument(
        "--platform", default="CPU", choices=["CPU", "Reference"], help="OpenMM platform of the dynamics"
    )
    parser.add_argument(
        "--label-platform",
        default="Reference",
        choices=["CPU", "Reference"],
        help="OpenMM platform of the labels (Reference: float64, short + long = total "
        "to ~1e-12 eV/A; CPU: faster, mixed precision)",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU platform threads")
    parser.add_argument("--seed", type=int, default=0, help="velocities, Langevin noise, check frames")
    parser.add_argument(
        "--split-tol", type=float, default=1e-6, help="largest allowed |F - F_short - F_long| (eV/A)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=".npz path (data/protein_<system>.npz when not given); a .json record beside it",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder ($EQUISCALE_CACHE or ~/.cache/equiscale when not given)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate (or load from the cache) the frames, write ``--out`` and its JSON record."""
    from equiscale.provenance import portable_path, write_record

    started = time.time()
    if args.fraction_frames < 1:
        raise ValueError(f"--fraction-frames must be >= 1, got {args.fraction_frames}")
    for rc in args.fraction_cutoffs:
        if not (np.isfinite(rc) and rc > 0):
            raise ValueError(f"--fraction-cutoffs must be finite numbers > 0, got {rc}")
    data = protein_frames(
        args.system,
        cache_dir=args.cache_dir,
        frames=args.frames,
        interval=args.interval,
        equilibrate=args.equilibrate,
        temperature=args.temperature,
        timestep=args.timestep,
        friction=args.friction,
        cutoff=args.cutoff,
        constraints=args.constraints,
        platform=args.platform,
        label_platform=args.label_platform,
        threads=args.threads,
        seed=args.seed,
        split_tol=args.split_tol,
    )
    out = Path(args.out or f"data/protein_{args.system}.npz")
    arrays = {k: getattr(data, k) for k in _ARRAYS}
    arrays.update(
        cutoff=np.array(data.cutoff),
        generation_seconds=np.array(data.meta["generation_seconds"]),
        md_seconds_per_step=np.array(data.meta["md_seconds_per_step"]),
        settings_json=np.array(json.dumps(data.meta["settings"])),
        checks_json=np.array(json.dumps(data.meta["checks"])),
    )
    save_npz(out, arrays)
    prmtop, _ = load_structure(args.system)
    params = nonbonded_parameters(build_system(prmtop, args.constraints))
    cutoffs = sorted({float(args.cutoff), *map(float, args.fraction_cutoffs)})
    fractions = long_range_fraction(data.pos, data.forces, params, cutoffs, max_frames=args.fraction_frames)
    record = {
        "dataset": "protein",
        "output": portable_path(out),
        "system": args.system,
        "atoms": data.n_atoms,
        "frames": len(data),
        "settings": data.meta["settings"],
        "generation_seconds": data.meta["generation_seconds"],
        "md_seconds_per_step": data.meta["md_seconds_per_step"],
        "checks": data.meta["checks"],
        "energy_eV": {"mean": float(data.energy.mean()), "std": float(data.energy.std())},
        "force_rms_eV_per_A": float(np.sqrt((data.forces**2).mean())),
        "long_range_fraction": fractions,
    }
    full = write_record(out.with_suffix(".json"), record, started=started)
    frac = ", ".join(f"r_c {k} A: {v['rms_ratio']:.3f}" for k, v in fractions.items())
    print(
        f"wrote {len(data)} frames of {data.n_atoms} atoms to {out} (generated in "
        f"{data.meta['generation_seconds']:.1f} s, {1e3 * data.meta['md_seconds_per_step']:.2f} "
        f"ms per MD step); long-range force fraction ||F_long||/||F||: {frac}"
    )
    return full
