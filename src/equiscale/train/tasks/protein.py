"""Energies and forces of all-atom biomolecules (``equiscale data protein``), with metrics on the
long-range part of the force.

Samples are those of :mod:`equiscale.train.tasks.molecules` (``pos [n, 3]``, ``z [n]``,
``energy []``, ``forces [n, 3]``) plus ``forces_long [n, 3]``: the part of the force from atoms
beyond the data set's cutoff r_c (see :mod:`equiscale.data.protein`). The model sees positions and
atomic numbers only; ``forces_long`` is used by the metrics.

Splits are contiguous time blocks (train, then validation, then test along the trajectory, ``gap``
frames dropped between blocks): neighbouring frames are correlated, so a random split would
measure interpolation between almost identical frames.

Loss: ``energy_weight * MSE(E) + force_weight * MSE(F)`` (eV, eV/A), energies relative to a
per-element reference fitted on the training split (as the ``md`` task).

Metrics (per batch, means over atoms): ``energy_mae``, ``forces_mae`` (monitored), ``forces_rmse``
over all components, and on the long-range part, with e_i = F_i^pred - F_i and
u_i = F_i^long / |F_i^long| (u_i = 0 where F_i^long = 0):

    forces_long_mae  = mean_i |e_i . u_i|,   forces_long_rmse = sqrt(mean_i (e_i . u_i)^2),

the error along the direction of the force that comes from beyond r_c. A model that gets the
short-range part exactly and misses the long-range part scores mean_i |F_i^long| (printed as the
baseline "exact short-range forces"); a perfect model scores 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equiscale.train.task import Batch, TaskData
from equiscale.train.tasks.molecules import (
    MoleculeDataset,
    _energy_metrics,
    _learning_curve,
    _pred,
    collate_molecules,
    fit_atom_refs,
)

__all__ = ["protein_task", "collate_protein", "long_range_errors"]


def collate_protein(samples: list[Batch]) -> Batch:
    """:func:`~equiscale.train.tasks.molecules.collate_molecules` plus ``forces_long [n_atoms, 3]``."""
    out = collate_molecules(samples)
    if all("forces_long" in s for s in samples):
        out["forces_long"] = torch.cat([s["forces_long"] for s in samples])
    return out


def long_range_errors(forces_pred: torch.Tensor, forces: torch.Tensor,
                      forces_long: torch.Tensor) -> dict[str, torch.Tensor]:
    """``forces_long_mae`` and ``forces_long_rmse`` (see the module docstring); inputs ``[n, 3]``."""
    if not forces_pred.shape == forces.shape == forces_long.shape or forces.shape[-1] != 3:
        raise ValueError(f"forces_pred, forces and forces_long must all be [n, 3], got "
                         f"{tuple(forces_pred.shape)}, {tuple(forces.shape)}, {tuple(forces_long.shape)}")
    norm = forces_long.norm(dim=-1, keepdim=True)  # [n, 1]
    unit = torch.where(norm > 0, forces_long / norm.clamp_min(torch.finfo(norm.dtype).tiny), 0.0)
    along = ((forces_pred - forces) * unit).sum(-1)  # [n]
    return {"forces_long_mae": along.abs().mean(), "forces_long_rmse": (along**2).mean().sqrt()}


def _metrics(pred, batch: Batch) -> dict[str, torch.Tensor]:
    out = _energy_metrics(pred, batch)
    if "forces_long" in batch:
        out.update(long_range_errors(_pred(pred, "forces"), batch["forces"], batch["forces_long"]))
    return out


def protein_task(path: str = "data/protein_t4-lysozyme.npz", n_train: int = 100, n_val: int = 20,
                 n_test: int = 40, gap: int = 0, energy_weight: float = 1.0, force_weight: float = 100.0,
                 atom_refs: bool = True, split_tol: float = 1e-6) -> TaskData:
    """Frames from an ``.npz`` written by ``equiscale data protein``; contiguous time-block split.

    The file's checksum is verified and its frames pass
    :func:`equiscale.data.protein.check_protein_arrays` (finite, eV/A, zero net force of the total
    and of both parts, |F - F^short - F^long| <= ``split_tol``) before any training.
    """
    from equiscale.data.cache import load_npz
    from equiscale.data.protein import REQUIRED, ProteinFrames, check_protein_arrays, time_block_splits

    for name, value in (("energy_weight", energy_weight), ("force_weight", force_weight)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value)
                                                                                 and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"protein data not found at {path}; make it with `equiscale data protein`")
    arrays = load_npz(path, required=REQUIRED)
    data = ProteinFrames.from_arrays(arrays)
    check_protein_arrays(arrays, system=str(path), split_tol=split_tol)
    splits = time_block_splits(len(data), n_train, n_val, n_test, gap)

    def structures(idx: np.ndarray) -> list[dict[str, np.ndarray]]:
        return [{"z": data.z, "pos": data.pos[k], "energy": float(data.energy[k]), "forces": data.forces[k],
                 "forces_long": data.forces_long[k]} for k in idx]

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
        e = ((_pred(pred, "energy") - batch["energy"]) ** 2).mean()
        f = ((_pred(pred, "forces") - batch["forces"]) ** 2).mean()
        return energy_weight * e + force_weight * f

    def baselines() -> dict[str, float]:
        e = torch.stack([s["energy"] for s in test.items])
        f = torch.cat([s["forces"] for s in test.items])
        fl = torch.cat([s["forces_long"] for s in test.items])
        short = long_range_errors(f - fl, f, fl)  # exact short-range forces, long-range part missed
        zero = long_range_errors(torch.zeros_like(f), f, fl)
        return {"mean energy, zero forces (forces_mae)": float(f.abs().mean()),
                "mean energy, zero forces (energy_mae)": float(e.abs().mean()),
                "mean energy, zero forces (forces_long_mae)": float(zero["forces_long_mae"]),
                "exact short-range forces (forces_mae)": float(fl.abs().mean()),
                "exact short-range forces (forces_long_mae)": float(short["forces_long_mae"])}

    return TaskData(
        train=train, val=val, test=test, collate=collate_protein, loss=loss, metrics=_metrics,
        monitor="forces_mae", batch_size_of=lambda b: int(b["energy"].shape[0]),
        describe=f"protein frames from {path} ({data.n_atoms} atoms, r_c {data.cutoff:g} A): "
                 f"{n_train}/{n_val}/{n_test} train/val/test frames in contiguous time blocks (gap {gap})",
        baselines=baselines, plot=_learning_curve("forces_mae"),
    )
