"""Energies and forces of all-atom biomolecules (``equiscale data protein``), with metrics on the
long-range part of the force.

Samples are those of :mod:`equiscale.train.tasks.molecules` (``pos [n, 3]``, ``z [n]``,
``energy []``, ``forces [n, 3]``) plus ``forces_long [n, 3]``: the part of the force from atoms
beyond the data set's cutoff r_c (see :mod:`equiscale.data.protein`). The model sees positions and
atomic numbers only; ``forces_long`` is used by the metrics.

Splits are contiguous time blocks (train, then validation, then test along the trajectory, ``gap``
frames dropped between blocks): neighbouring frames are correlated, so a random split would
measure interpolation between almost identical frames.

Loss: ``energy_weight * MSE(E / n) + force_weight * MSE(F)`` (eV per atom, eV/A; MACE's weighted
loss), energies relative to a per-element reference fitted on the training split (as the ``md``
task). The energy term is per atom because a total-energy MSE grows with n^2: on 2,603 atoms it
outweighed the force term ~3:1 at the start of training (13 eV energy errors) and the first
epoch went into the energy offset while the forces stayed at the zero-force baseline.

``target="long"`` trains on the long-range part alone (E^long, F^long: the pair terms beyond r_c)
instead of the total: a direct measurement of whether a model can represent the forces a local
model cannot see (its ``forces_mae`` is then the error on F^long itself).

Metrics (per batch, means over atoms): ``energy_mae``, ``forces_mae`` (monitored), ``forces_rmse``
over all components, and on the long-range part, with e_i = F_i^pred - F_i and
u_i = F_i^long / |F_i^long| (u_i = 0 where F_i^long = 0):

    forces_long_mae  = mean_i |e_i . u_i|,   forces_long_rmse = sqrt(mean_i (e_i . u_i)^2),

the error along the direction of the force that comes from beyond r_c. A model that gets the
short-range part exactly and misses the long-range part scores mean_i |F_i^long| (printed as the
baseline "exact short-range forces"); a perfect model scores 0.

Dynamics (:func:`protein_dynamics_task`, the all-atom analogue of n-body): from the positions,
velocities and partial charges at frame t predict the positions at frame t + ``horizon``. Samples
use the n-body batch layout, ``loc, vel [N, 3]``, ``charges [N]``, ``target [N, 3]`` (batched
``[B, N, ...]``; atoms in topology order), so the n-body models (``se3hyena``, ``egnn``, ...) run
on it unchanged. Pairs (t, t + horizon) lie inside one time block. Metric: ``mse``, the mean over
atoms and coordinates of the squared position error (A^2), beside the copy (x_t) and
constant-velocity (x_t + v_t dt) baselines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equiscale.train.task import Batch, SymmetrySpec, TaskData
from equiscale.train.tasks.molecules import (
    MoleculeDataset,
    _energy_metrics,
    _learning_curve,
    _pred,
    collate_molecules,
    fit_atom_refs,
)

__all__ = [
    "protein_task",
    "protein_dynamics_task",
    "collate_protein",
    "long_range_errors",
    "ProteinDynamicsDataset",
    "PROTEIN_DYNAMICS_SYMMETRY",
]


def collate_protein(samples: list[Batch]) -> Batch:
    """:func:`~equiscale.train.tasks.molecules.collate_molecules` plus ``forces_long [n_atoms, 3]``."""
    out = collate_molecules(samples)
    if all("forces_long" in s for s in samples):
        out["forces_long"] = torch.cat([s["forces_long"] for s in samples])
    return out


def long_range_errors(
    forces_pred: torch.Tensor, forces: torch.Tensor, forces_long: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``forces_long_mae`` and ``forces_long_rmse`` (see the module docstring); inputs ``[n, 3]``."""
    if not forces_pred.shape == forces.shape == forces_long.shape or forces.shape[-1] != 3:
        raise ValueError(
            f"forces_pred, forces and forces_long must all be [n, 3], got "
            f"{tuple(forces_pred.shape)}, {tuple(forces.shape)}, {tuple(forces_long.shape)}"
        )
    norm = forces_long.norm(dim=-1, keepdim=True)  # [n, 1]
    unit = torch.where(norm > 0, forces_long / norm.clamp_min(torch.finfo(norm.dtype).tiny), 0.0)
    along = ((forces_pred - forces) * unit).sum(-1)  # [n]
    return {"forces_long_mae": along.abs().mean(), "forces_long_rmse": (along**2).mean().sqrt()}


def _metrics(pred, batch: Batch) -> dict[str, torch.Tensor]:
    out = _energy_metrics(pred, batch)
    if "forces_long" in batch:
        out.update(long_range_errors(_pred(pred, "forces"), batch["forces"], batch["forces_long"]))
    return out


def protein_task(
    path: str = "data/protein_t4-lysozyme.npz",
    n_train: int = 100,
    n_val: int = 20,
    n_test: int = 40,
    gap: int = 0,
    energy_weight: float = 1.0,
    force_weight: float = 100.0,
    atom_refs: bool = True,
    split_tol: float = 1e-6,
    target: str = "total",
) -> TaskData:
    """Frames from an ``.npz`` written by ``equiscale data protein``; contiguous time-block split;
    ``target`` "total" (E, F) or "long" (E^long, F^long: module docstring).

    The file's checksum is verified and its frames pass
    :func:`equiscale.data.protein.check_protein_arrays` (finite, eV/A, zero net force of the total
    and of both parts, |F - F^short - F^long| <= ``split_tol``) before any training.
    """
    from equiscale.data.cache import load_npz
    from equiscale.data.protein import (
        REQUIRED,
        ProteinFrames,
        check_protein_arrays,
        coulomb_beyond,
        time_block_splits,
    )

    for name, value in (("energy_weight", energy_weight), ("force_weight", force_weight)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (np.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if target not in ("total", "long"):
        raise ValueError(f"target must be 'total' or 'long', got {target!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"protein data not found at {path}; make it with `equiscale data protein`")
    arrays = load_npz(path, required=REQUIRED)
    data = ProteinFrames.from_arrays(arrays)
    check_protein_arrays(arrays, system=str(path), split_tol=split_tol)
    splits = time_block_splits(len(data), n_train, n_val, n_test, gap)
    energy, forces = (data.energy, data.forces) if target == "total" else (data.energy_long, data.forces_long)

    def structures(idx: np.ndarray) -> list[dict[str, np.ndarray]]:
        return [
            {
                "z": data.z,
                "pos": data.pos[k],
                "energy": float(energy[k]),
                "forces": forces[k],
                "forces_long": data.forces_long[k],
            }
            for k in idx
        ]

    train_s, val_s, test_s = (structures(s) for s in splits)
    refs = fit_atom_refs(train_s) if atom_refs else np.zeros(100)
    datasets = []
    for ss in (train_s, val_s, test_s):
        ds = MoleculeDataset(ss, refs)
        for item, s in zip(ds.items, ss):
            item["forces_long"] = torch.as_tensor(s["forces_long"], dtype=torch.float32)
        datasets.append(ds)
    train, val, test = datasets

    def loss(pred, batch: Batch) -> torch.Tensor:
        e = (((_pred(pred, "energy") - batch["energy"]) / batch["n_atoms"]) ** 2).mean()
        f = ((_pred(pred, "forces") - batch["forces"]) ** 2).mean()
        return energy_weight * e + force_weight * f

    def baselines() -> dict[str, float]:
        e = torch.stack([s["energy"] for s in test.items])
        f = torch.cat([s["forces"] for s in test.items])
        fl = torch.cat([s["forces_long"] for s in test.items])
        short = long_range_errors(f - fl, f, fl)  # exact short-range forces, long-range part missed
        zero = long_range_errors(torch.zeros_like(f), f, fl)
        # the long-range part replaced by the Coulomb forces of the file's charges beyond r_c
        far = torch.cat(
            [
                torch.as_tensor(coulomb_beyond(data.pos[k], data.charges, data.cutoff), dtype=f.dtype)
                for k in splits[2]
            ]
        )
        coul = long_range_errors(f - fl + far, f, fl)
        return {
            "mean energy, zero forces (forces_mae)": float(f.abs().mean()),
            "mean energy, zero forces (energy_mae)": float(e.abs().mean()),
            "mean energy, zero forces (forces_long_mae)": float(zero["forces_long_mae"]),
            "exact short-range forces (forces_mae)": float(fl.abs().mean()),
            "exact short-range forces (forces_long_mae)": float(short["forces_long_mae"]),
            "exact short-range + Coulomb of the file's charges beyond r_c (forces_mae)": float(
                (far - fl).abs().mean()
            ),
            "exact short-range + Coulomb of the file's charges beyond r_c (forces_long_mae)": float(
                coul["forces_long_mae"]
            ),
        }

    return TaskData(
        train=train,
        val=val,
        test=test,
        collate=collate_protein,
        loss=loss,
        metrics=_metrics,
        monitor="forces_mae",
        batch_size_of=lambda b: int(b["energy"].shape[0]),
        describe=f"protein frames from {path} ({data.n_atoms} atoms, r_c {data.cutoff:g} A, target "
        f"{'E, F' if target == 'total' else 'E^long, F^long'}): "
        f"{n_train}/{n_val}/{n_test} train/val/test frames in contiguous time blocks (gap {gap})",
        baselines=baselines,
        plot=_learning_curve("forces_mae"),
    )


#: How the dynamics task's inputs and prediction transform (atoms on axis 1).
PROTEIN_DYNAMICS_SYMMETRY = SymmetrySpec(
    inputs={"loc": "position", "vel": "vector", "charges": "scalar"}, output="position", node_dim=1
)


class ProteinDynamicsDataset(torch.utils.data.Dataset):
    """Pairs of frames ``(t, t + horizon)``: ``{"loc", "vel" [N, 3], "charges" [N], "target" [N, 3],
    "dt" []}`` (A, A/ps, e, A, ps), float32 tensors."""

    def __init__(
        self,
        pos: np.ndarray,
        vel: np.ndarray,
        time_ps: np.ndarray,
        charges: np.ndarray,
        frames: np.ndarray,
        horizon: int,
    ) -> None:
        t = np.asarray(frames[:-horizon] if horizon else frames)
        self.loc = torch.as_tensor(pos[t], dtype=torch.float32)  # [S, N, 3]
        self.vel = torch.as_tensor(vel[t], dtype=torch.float32)
        self.target = torch.as_tensor(pos[t + horizon], dtype=torch.float32)
        self.dt = torch.as_tensor(time_ps[t + horizon] - time_ps[t], dtype=torch.float32)  # [S]
        self.charges = torch.as_tensor(charges, dtype=torch.float32)  # [N]

    def __len__(self) -> int:
        return self.loc.shape[0]

    def __getitem__(self, i: int) -> Batch:
        return {
            "loc": self.loc[i],
            "vel": self.vel[i],
            "charges": self.charges,
            "target": self.target[i],
            "dt": self.dt[i],
        }


def _position_mse(pred, batch: Batch) -> torch.Tensor:
    if not isinstance(pred, torch.Tensor) or pred.shape != batch["target"].shape:
        raise ValueError(
            f"the model must return positions of shape {tuple(batch['target'].shape)}, got "
            f"{tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__}"
        )
    return torch.mean((pred - batch["target"]) ** 2)


def protein_dynamics_task(
    path: str = "data/protein_t4-lysozyme.npz",
    horizon: int = 1,
    n_train: int = 100,
    n_val: int = 20,
    n_test: int = 40,
    gap: int = 0,
    split_tol: float = 1e-6,
) -> TaskData:
    """Predict the positions ``horizon`` frames ahead (module docstring); contiguous time blocks of
    ``n_train``/``n_val``/``n_test`` frames give ``n - horizon`` samples each. The file is checked
    as in :func:`protein_task`."""
    from torch.utils.data import default_collate

    from equiscale.data.cache import load_npz
    from equiscale.data.protein import REQUIRED, ProteinFrames, check_protein_arrays, time_block_splits

    if not Path(path).is_file():
        raise FileNotFoundError(f"protein data not found at {path}; make it with `equiscale data protein`")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    if horizon >= min(n_train, n_val, n_test):
        raise ValueError(
            f"horizon ({horizon}) must be smaller than n_train, n_val and n_test "
            f"({n_train}, {n_val}, {n_test}): pairs stay inside one time block"
        )
    arrays = load_npz(path, required=REQUIRED)
    data = ProteinFrames.from_arrays(arrays)
    check_protein_arrays(arrays, system=str(path), split_tol=split_tol)
    blocks = time_block_splits(len(data), n_train, n_val, n_test, gap)
    train, val, test = (
        ProteinDynamicsDataset(data.pos, data.vel, data.time_ps, data.charges, b, horizon) for b in blocks
    )

    def baselines() -> dict[str, float]:
        copy = torch.mean((test.loc - test.target) ** 2).item()
        const = torch.mean((test.loc + test.dt[:, None, None] * test.vel - test.target) ** 2).item()
        return {"untrained: copy frame": copy, "untrained: constant velocity": const}

    dt = float(np.median(np.diff(data.time_ps))) * horizon if len(data) > 1 else float("nan")
    return TaskData(
        train=train,
        val=val,
        test=test,
        collate=default_collate,
        loss=_position_mse,
        metrics=lambda pred, batch: {"mse": _position_mse(pred, batch)},
        monitor="mse",
        batch_size_of=lambda b: int(b["loc"].shape[0]),
        symmetry=PROTEIN_DYNAMICS_SYMMETRY,
        describe=f"protein dynamics from {path} ({data.n_atoms} atoms): positions {horizon} frame(s) "
        f"(~{dt:.3g} ps) ahead, {len(train)}/{len(val)}/{len(test)} train/val/test pairs in "
        f"contiguous time blocks (gap {gap})",
        baselines=baselines,
        plot=_learning_curve("mse"),
    )
