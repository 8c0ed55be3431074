"""Consistency checks for energy/force data sets: labels are checked, not trusted.

Every set of frames the library writes (``equiscale data md``) or reads for training (the ``md``
task) passes :func:`check_frames`; a failure raises :class:`DataConsistencyError` naming the frame
and the figure. The checks and why:

- finite: no NaN/inf in positions, energies or forces.
- units: the force RMS is below ``max_force_rms`` (eV/A; 50 by default, far above any MD at
  thermal energies, far below a Hartree/Bohr or kcal/mol mix-up of a large force).
- net force: for a system without external field, translation invariance of E gives
  sum_i F_i = -sum_i dE/dr_i = 0 (isolated molecules and periodic cells alike). ASE constraints
  such as ``FixCom`` change what ``atoms.get_forces()`` returns (since ASE 3.23 ``FixCom``
  subtracts m_i * lambda): labels stored that way have net forces of eV/A and are not -dE/dr.
  Checked per frame: |sum_i F_i| <= ``net_force_tol`` (eV/A).
- forces are -dE/dr (:func:`check_finite_differences`, when the calculator is at hand): central
  differences of E along a random unit direction d at a few frames, (E(r + h d) - E(r - h d)) /
  (2h) against -F . d. This catches any force that is not the gradient of the stored energy, the
  FixCom term included.
- energy along a trajectory (:func:`trajectory_work_residual`, for frames in time order): the
  energy change predicted by the forces, -(F_t + F_{t+1})/2 . (r_{t+1} - r_t) (trapezoid rule),
  against the stored E_{t+1} - E_t.
  A diagnostic only: its error grows with the time between frames, and mass-weighted force
  terms like FixCom's cancel in it when the centre of mass is fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "DataConsistencyError",
    "check_frames",
    "check_finite_differences",
    "trajectory_work_residual",
    "net_forces",
]


class DataConsistencyError(ValueError):
    """Energies/forces that fail a physical consistency check."""


def net_forces(frames: Sequence) -> np.ndarray:
    """|sum_i F_i| per frame [n_frames] (eV/A); frames without forces give NaN."""
    return np.array(
        [np.linalg.norm(np.asarray(f.forces).sum(axis=0)) if f.forces is not None else np.nan for f in frames]
    )


def check_frames(
    frames: Sequence, *, source: str = "data", net_force_tol: float = 0.05, max_force_rms: float = 50.0
) -> dict[str, float]:
    """Raise :class:`DataConsistencyError` unless every frame is finite, in plausible units and
    free of net force; return the figures (max net force, force RMS) for the record."""
    if not frames:
        raise DataConsistencyError(f"{source}: no frames")
    worst_net, worst_k = 0.0, -1
    sq, count = 0.0, 0
    for k, f in enumerate(frames):
        if not np.isfinite(f.pos).all():
            raise DataConsistencyError(f"{source}: frame {k} has non-finite positions")
        if f.energy is not None and not np.isfinite(f.energy):
            raise DataConsistencyError(f"{source}: frame {k} has a non-finite energy ({f.energy})")
        if f.forces is None:
            continue
        forces = np.asarray(f.forces, dtype=np.float64)
        if forces.shape != np.asarray(f.pos).shape:
            raise DataConsistencyError(
                f"{source}: frame {k} has forces of shape {forces.shape} "
                f"for positions {np.asarray(f.pos).shape}"
            )
        if not np.isfinite(forces).all():
            raise DataConsistencyError(f"{source}: frame {k} has non-finite forces")
        net = float(np.linalg.norm(forces.sum(axis=0)))
        if net > worst_net:
            worst_net, worst_k = net, k
        sq += float((forces**2).sum())
        count += forces.size
    if worst_net > net_force_tol:
        raise DataConsistencyError(
            f"{source}: frame {worst_k} has a net force of {worst_net:.3g} eV/A (tolerance "
            f"{net_force_tol:g}): forces of a system without external field sum to zero, so these "
            "labels are not -dE/dr (were they read through an ASE constraint such as FixCom? store "
            "atoms.get_forces(apply_constraint=False))"
        )
    rms = float(np.sqrt(sq / count)) if count else 0.0
    if rms > max_force_rms:
        raise DataConsistencyError(
            f"{source}: force RMS {rms:.3g} eV/A exceeds {max_force_rms:g}: are the forces in eV/A?"
        )
    return {"max_net_force_eV_per_A": worst_net, "force_rms_eV_per_A": rms}


def check_finite_differences(
    frames: Sequence,
    energy_fn: Callable[[object], float],
    *,
    n_frames: int = 3,
    step: float = 1e-3,
    tol: float = 1e-3,
    seed: int = 0,
    source: str = "data",
) -> float:
    """Check -dE/dr = F at ``n_frames`` frames by central differences along random directions.

    ``energy_fn(frame_like)`` returns the energy (eV) of a frame whose ``pos`` is displaced; the
    check recomputes E(r + h d) and E(r - h d) for a random unit direction d over all atoms and
    compares (E+ - E-)/(2h) with -F . d. Returns the largest absolute difference (eV/A) and raises
    :class:`DataConsistencyError` when it exceeds ``tol``.
    """
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(frames), size=min(n_frames, len(frames)), replace=False)
    worst = 0.0
    for k in sorted(int(p) for p in picks):
        f = frames[k]
        if f.forces is None:
            continue
        d = rng.normal(size=np.asarray(f.pos).shape)
        d /= np.linalg.norm(d)
        e_plus = energy_fn(replace(f, pos=f.pos + step * d))
        e_minus = energy_fn(replace(f, pos=f.pos - step * d))
        slope = (e_plus - e_minus) / (2 * step)
        err = abs(slope + float((np.asarray(f.forces) * d).sum()))
        if err > tol:
            raise DataConsistencyError(
                f"{source}: frame {k}: dE/dr along a random direction is {slope:.6g} eV/A by finite "
                f"differences but -F.d = {-float((np.asarray(f.forces) * d).sum()):.6g} (difference "
                f"{err:.3g} > {tol:g}): the stored forces are not -dE/dr"
            )
        worst = max(worst, err)
    return worst


def trajectory_work_residual(frames: Sequence) -> dict[str, float]:
    """Energy change against trapezoid work for consecutive frames (time order).

    Returns ``rms_dE`` (RMS of E_{t+1} - E_t) and ``rms_residual`` (RMS of E_{t+1} - E_t +
    (F_t + F_{t+1})/2 . (r_{t+1} - r_t)); a ratio
    residual/dE near 0 means the forces integrate to the energies. See the module docstring for
    what this can and cannot see.
    """
    de, res = [], []
    for a, b in zip(frames[:-1], frames[1:]):
        if a.energy is None or b.energy is None or a.forces is None or b.forces is None:
            continue
        dx = np.asarray(b.pos) - np.asarray(a.pos)
        de_from_forces = -0.5 * float(((np.asarray(a.forces) + np.asarray(b.forces)) * dx).sum())
        de.append(b.energy - a.energy)
        res.append(b.energy - a.energy - de_from_forces)
    de_arr, res_arr = np.array(de), np.array(res)
    return {
        "rms_dE": float(np.sqrt((de_arr**2).mean())) if de else float("nan"),
        "rms_residual": float(np.sqrt((res_arr**2).mean())) if res else float("nan"),
    }
