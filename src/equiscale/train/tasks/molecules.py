"""Energy (and force) regression on molecules and materials: QM9 and MD frames (extxyz).

Samples are ``{"pos" [n, 3], "z" [n], "energy" [], "forces" [n, 3] (MD)}`` (plus ``"cell" [3, 3]``
and ``"pbc" [3]`` for periodic frames); :func:`collate_molecules` concatenates atoms and adds
``"batch" [n_atoms]`` and ``"n_atoms" [B]``. Neighbour lists are built by the model.

Targets are residuals: a per-element reference energy fitted by least squares on the training
split (E ~ sum_i ref[z_i]) is subtracted, so a model starts near zero error; errors in eV are
unchanged by the shift. ``task.train.atom_refs`` holds the fitted references (eV per element)
to add back for total energies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from equiscale.train.task import Batch, TaskData

__all__ = [
    "MoleculeDataset",
    "collate_molecules",
    "fit_atom_refs",
    "qm9_task",
    "md_task",
    "split_indices",
    "PUBLISHED_QM9_U0_MAE_EV",
]

#: QM9 U0 test MAE (eV) with the full ~110k training set (SchNet 2018, DimeNet++ 2020, PaiNN 2021).
PUBLISHED_QM9_U0_MAE_EV = {"SchNet": 0.014, "DimeNet++": 0.00632, "PaiNN": 0.00585}


class MoleculeDataset(Dataset):
    """A list of structures; item i is a dict of float32 (positions, energies) and int64 tensors."""

    def __init__(self, structures: list[dict[str, np.ndarray]], atom_refs: np.ndarray) -> None:
        self.atom_refs = atom_refs
        self.items = []
        for s in structures:
            z = np.asarray(s["z"], dtype=np.int64)
            item = {
                "pos": torch.as_tensor(s["pos"], dtype=torch.float32),
                "z": torch.as_tensor(z),
                "energy": torch.tensor(float(s["energy"]) - float(atom_refs[z].sum()), dtype=torch.float32),
            }
            if s.get("forces") is not None:
                item["forces"] = torch.as_tensor(s["forces"], dtype=torch.float32)
            if s.get("cell") is not None:
                item["cell"] = torch.as_tensor(s["cell"], dtype=torch.float32)
                item["pbc"] = torch.as_tensor(s["pbc"], dtype=torch.bool)
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Batch:
        return self.items[i]


def collate_molecules(samples: list[Batch]) -> Batch:
    """Concatenate atoms; ``batch`` [n_atoms] structure index, per-structure tensors stacked."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    n = torch.tensor([s["z"].shape[0] for s in samples])
    out = {
        "pos": torch.cat([s["pos"] for s in samples]),
        "z": torch.cat([s["z"] for s in samples]),
        "batch": torch.repeat_interleave(torch.arange(len(samples)), n),
        "n_atoms": n,
        "energy": torch.stack([s["energy"] for s in samples]),
    }
    if all("forces" in s for s in samples):
        out["forces"] = torch.cat([s["forces"] for s in samples])
    if any("cell" in s for s in samples):
        if not all("cell" in s for s in samples):
            raise ValueError("cannot batch periodic and non-periodic structures together")
        out["cell"] = torch.stack([s["cell"] for s in samples])
        out["pbc"] = torch.stack([s["pbc"] for s in samples])
    return out


def fit_atom_refs(structures: list[dict[str, np.ndarray]], num_elements: int = 100) -> np.ndarray:
    """Least-squares (minimum-norm) per-element energies ref [num_elements]: E ~ counts @ ref."""
    counts = np.zeros((len(structures), num_elements))
    for k, s in enumerate(structures):
        np.add.at(counts[k], np.asarray(s["z"], dtype=np.int64), 1.0)
    energies = np.array([float(s["energy"]) for s in structures])
    refs, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return refs


def _pred(pred, key: str) -> torch.Tensor:
    if not isinstance(pred, dict) or key not in pred:
        raise ValueError(
            f"the model must return a dict with {key!r}; got "
            f"{sorted(pred) if isinstance(pred, dict) else type(pred).__name__}"
        )
    return pred[key]


def _energy_metrics(pred, batch: Batch) -> dict[str, torch.Tensor]:
    err = _pred(pred, "energy") - batch["energy"]
    out = {
        "energy_mae": err.abs().mean(),
        "energy_mae_per_atom": (err.abs() / batch["n_atoms"]).mean(),
        "mse": (err**2).mean(),
    }
    if "forces" in batch and isinstance(pred, dict) and "forces" in pred:
        ferr = pred["forces"] - batch["forces"]
        out["forces_mae"] = ferr.abs().mean()
        out["forces_rmse"] = (ferr**2).mean().sqrt()
    return out


def _learning_curve(metric: str):
    def plot(model, task, out_dir) -> list[str]:
        from equiscale.train.plots import plot_learning_curves

        out = Path(out_dir)
        return [plot_learning_curves(out / "logs" / "metrics.csv", out / "learning_curve.png", metric=metric)]

    return plot


def split_indices(n_total: int, n_train: int, n_val: int, n_test: int, seed: int) -> list[np.ndarray]:
    if min(n_train, n_val, n_test) < 1 or n_train + n_val + n_test > n_total:
        raise ValueError(
            f"n_train + n_val + n_test (each >= 1) must be <= {n_total}, got {n_train} + {n_val} + {n_test}"
        )
    perm = np.random.default_rng(seed).permutation(n_total)
    return [perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val : n_train + n_val + n_test]]


def qm9_task(
    target: str = "U0",
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
    seed: int = 0,
    cache_dir: str | None = None,
) -> TaskData:
    """QM9 (from the qm9pack wheel), one target in eV (energies) or its own unit; random split.

    Loss: MSE of the target per molecule; metrics ``energy_mae`` (monitored), ``mse``. The molecules
    used pass :func:`equiscale.data.consistency.check_frames` (finite positions and targets).
    ``published``: U0 test MAE of well-known models trained on ~110k molecules (for U0 only).
    """
    from equiscale.data.qm9 import QM9_TARGETS, load_qm9

    if target not in QM9_TARGETS:
        raise ValueError(f"target must be one of {sorted(QM9_TARGETS)}, got {target!r}")
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:  # before loading QM9
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    column, factor, unit = QM9_TARGETS[target]
    data = load_qm9(cache_dir)
    ptr = data["ptr"]
    splits = split_indices(len(ptr) - 1, n_train, n_val, n_test, seed)

    def structures(idx: np.ndarray) -> list[dict[str, np.ndarray]]:
        return [
            {
                "z": data["z"][ptr[k] : ptr[k + 1]],
                "pos": data["pos"][ptr[k] : ptr[k + 1]],
                "energy": data[column][k] * factor,
            }
            for k in idx
        ]

    train_s, val_s, test_s = (structures(s) for s in splits)
    from equiscale.data.consistency import check_frames
    from equiscale.data.extxyz import Frame

    check_frames(
        [Frame(z=s["z"], pos=s["pos"], energy=float(s["energy"])) for s in (*train_s, *val_s, *test_s)],
        source=f"QM9 {target}",
    )
    refs = fit_atom_refs(train_s)
    train, val, test = (MoleculeDataset(s, refs) for s in (train_s, val_s, test_s))

    def baselines() -> dict[str, float]:
        e = torch.stack([s["energy"] for s in test.items])
        return {"per-element reference only (energy_mae)": float(e.abs().mean())}

    return TaskData(
        train=train,
        val=val,
        test=test,
        collate=collate_molecules,
        loss=lambda pred, batch: ((_pred(pred, "energy") - batch["energy"]) ** 2).mean(),
        metrics=_energy_metrics,
        monitor="energy_mae",
        published=dict(PUBLISHED_QM9_U0_MAE_EV) if target == "U0" else {},
        batch_size_of=lambda b: int(b["energy"].shape[0]),
        describe=f"QM9 {target} ({unit}), {n_train}/{n_val}/{n_test} train/val/test molecules "
        f"(random split, seed {seed}); published numbers use ~110k training molecules",
        baselines=baselines,
        plot=_learning_curve("energy_mae"),
    )


def md_task(
    path: str = "data/md_CH3CH2OH_xtb.extxyz",
    n_train: int = 1000,
    n_val: int = 100,
    n_test: int = 200,
    seed: int = 0,
    energy_weight: float = 1.0,
    force_weight: float = 10.0,
    atom_refs: bool = True,
) -> TaskData:
    """Energies and forces from an extxyz file (e.g. ``equiscale data md``); random frame split.

    Loss: ``energy_weight * MSE(E) + force_weight * MSE(F)`` (eV, eV/A); metrics ``energy_mae``,
    ``forces_mae`` (monitored), ``forces_rmse``. Frames of one trajectory are correlated: a random
    split measures interpolation along the sampled trajectory.

    ``atom_refs=False`` trains on total energies (no per-element reference subtracted; an ablation).
    The frames must pass :func:`equiscale.data.consistency.check_frames` (finite, plausible units,
    zero net force): labels that are not -dE/dr raise before any training.
    """
    from equiscale.data.consistency import check_frames
    from equiscale.data.extxyz import read_extxyz

    if not Path(path).is_file():
        raise FileNotFoundError(f"MD data not found at {path}; make it with `equiscale data md`")
    frames = read_extxyz(path)
    missing = [k for k, f in enumerate(frames) if f.energy is None or f.forces is None]
    if missing:
        raise ValueError(f"{path}: frames {missing[:5]} lack energy or forces")
    check_frames(frames, source=path)
    splits = split_indices(len(frames), n_train, n_val, n_test, seed)

    def structures(idx: np.ndarray) -> list[dict[str, np.ndarray]]:
        out = []
        for k in idx:
            f = frames[k]
            s = {"z": f.z, "pos": f.pos, "energy": f.energy, "forces": f.forces}
            if f.cell is not None and f.pbc.any():
                s["cell"], s["pbc"] = f.cell, f.pbc
            out.append(s)
        return out

    train_s, val_s, test_s = (structures(s) for s in splits)
    refs = fit_atom_refs(train_s) if atom_refs else np.zeros(100)
    train, val, test = (MoleculeDataset(s, refs) for s in (train_s, val_s, test_s))

    def loss(pred, batch: Batch) -> torch.Tensor:
        e = ((_pred(pred, "energy") - batch["energy"]) ** 2).mean()
        f = ((_pred(pred, "forces") - batch["forces"]) ** 2).mean()
        return energy_weight * e + force_weight * f

    def baselines() -> dict[str, float]:
        e = torch.stack([s["energy"] for s in test.items])
        f = torch.cat([s["forces"] for s in test.items])
        return {
            "mean energy, zero forces (forces_mae)": float(f.abs().mean()),
            "mean energy, zero forces (energy_mae)": float(e.abs().mean()),
        }

    return TaskData(
        train=train,
        val=val,
        test=test,
        collate=collate_molecules,
        loss=loss,
        metrics=_energy_metrics,
        monitor="forces_mae",
        batch_size_of=lambda b: int(b["energy"].shape[0]),
        describe=f"MD frames from {path}: {n_train}/{n_val}/{n_test} train/val/test "
        f"(random split, seed {seed}), energies and forces",
        baselines=baselines,
        plot=_learning_curve("forces_mae"),
    )
