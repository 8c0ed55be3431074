"""Energy/force models side by side with MACE on the same split, budget and machine.

``equiscale bench mlip`` (see :func:`run`) writes the split of an MD data set (the frames the ``md``
task uses, same seed) as extxyz files for MACE, trains MACE with its own trainer
(``mace_run_train`` from ``mace-torch`` in the peers venv, ``make peers``), predicts the test frames
with MACE's ASE calculator (``tools/peers/mace_predict.py``) and computes the errors with the
same metric code as for our models, whose numbers come from their training runs' ``results.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_splits", "write_protein_splits", "force_energy_errors"]


def _write_xyz(
    path: Path, frames: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]], cell=None, pbc=None
) -> None:
    """One extxyz file of ``(z [n], pos [n, 3], energy, forces [n, 3])`` frames, keys ``REF_energy``
    and ``REF_forces``, written atomically."""
    from ase import Atoms
    from ase.io import write

    from equiscale.provenance import atomic_open

    images = []
    for k, (z, pos, energy, forces) in enumerate(frames):
        atoms = Atoms(
            numbers=z,
            positions=pos,
            cell=None if cell is None else cell[k],
            pbc=False if pbc is None else pbc[k],
        )
        atoms.info["REF_energy"] = float(energy)
        atoms.arrays["REF_forces"] = np.asarray(forces, dtype=np.float64)
        images.append(atoms)
    with atomic_open(path, "w") as fh:
        write(fh, images, format="extxyz")


def write_splits(data: str, out_dir: str, n_train: int, n_val: int, n_test: int, seed: int) -> dict[str, str]:
    """Write ``train.xyz``, ``valid.xyz``, ``test.xyz`` (ASE extxyz, keys ``REF_energy`` and
    ``REF_forces``) holding exactly the frames of ``md_task(data, n_train, n_val, n_test, seed)``."""
    from equiscale.data.consistency import check_frames
    from equiscale.data.extxyz import read_extxyz
    from equiscale.train.tasks.molecules import split_indices

    frames = read_extxyz(data)
    check_frames(frames, source=data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, idx in zip(
        ("train", "valid", "test"), split_indices(len(frames), n_train, n_val, n_test, seed)
    ):
        chosen = [frames[int(k)] for k in idx]
        path = out / f"{name}.xyz"
        _write_xyz(
            path,
            [(f.z, f.pos, f.energy, f.forces) for f in chosen],
            cell=[f.cell for f in chosen],
            pbc=[f.pbc for f in chosen],
        )
        paths[name] = str(path)
    return paths


def write_protein_splits(
    data: str, out_dir: str, n_train: int, n_val: int, n_test: int, gap: int
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Write the contiguous time blocks of ``protein_task(data, n_train, n_val, n_test, gap)`` as
    ``train/valid/test.xyz`` (as :func:`write_splits`); return the paths and the test block's
    ``energy [T]``, ``forces`` and ``forces_long [T * n, 3]`` for scoring. The file is checked as
    the task checks it."""
    from equiscale.data.cache import load_npz
    from equiscale.data.protein import REQUIRED, ProteinFrames, check_protein_arrays, time_block_splits

    arrays = load_npz(data, required=REQUIRED)
    check_protein_arrays(arrays, system=str(data), split_tol=1e-6)
    frames = ProteinFrames.from_arrays(arrays)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    blocks = time_block_splits(len(frames), n_train, n_val, n_test, gap)
    for name, idx in zip(("train", "valid", "test"), blocks):
        path = out / f"{name}.xyz"
        _write_xyz(path, [(frames.z, frames.pos[k], frames.energy[k], frames.forces[k]) for k in idx])
        paths[name] = str(path)
    test = blocks[2]
    reference = {
        "energy": frames.energy[test],
        "forces": frames.forces[test].reshape(-1, 3),
        "forces_long": frames.forces_long[test].reshape(-1, 3),
    }
    return paths, reference


def force_energy_errors(
    pred_energy: np.ndarray, pred_forces: np.ndarray, energy: np.ndarray, forces: np.ndarray
) -> dict[str, float]:
    """``energy_mae`` (eV per structure), ``forces_mae``, ``forces_rmse`` (eV/A, per component):
    the definitions of the ``md`` task's metrics."""
    ferr = np.asarray(pred_forces, dtype=np.float64) - np.asarray(forces, dtype=np.float64)
    eerr = np.asarray(pred_energy, dtype=np.float64) - np.asarray(energy, dtype=np.float64)
    return {
        "energy_mae": float(np.abs(eerr).mean()),
        "forces_mae": float(np.abs(ferr).mean()),
        "forces_rmse": float(np.sqrt((ferr**2).mean())),
    }


def run_row(path: str | Path) -> dict:
    """One table row from a run's ``results.json`` (our trainer's or ``bench mace``'s)."""
    import json

    res = json.loads(Path(path).read_text())
    steps = res.get("train_steps") or 0
    cfg = res.get("config", {})
    return {
        "model": res["model"],
        "run": str(Path(path).parent.as_posix()),
        "n_parameters": res.get("n_parameters"),
        "epochs": res.get("epochs_run"),
        "fit_time_min": round(res["fit_time_s"] / 60, 1) if res.get("fit_time_s") else None,
        "time_per_step_ms": round(1000 * res["fit_time_s"] / steps, 1) if steps else None,
        "forces_mae": res["test"]["forces_mae"],
        "forces_rmse": res["test"]["forces_rmse"],
        "energy_mae": res["test"]["energy_mae"],
        "precision": cfg.get("precision", "64-true" if res["model"] == "mace" else None),
        "command": res.get("command"),
        "git_commit": res.get("git_commit"),
    }


def markdown_table(rows: list[dict]) -> str:
    """Rows as a markdown table (errors in meV/A and meV)."""
    head = (
        "| model | run | parameters | epochs | training (min) | ms per step | force MAE (meV/A) | "
        "force RMSE (meV/A) | energy MAE (meV) |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['model']} | {Path(r['run']).name} | {r['n_parameters']:,} | {r['epochs']} | "
        f"{r['fit_time_min']} | "
        f"{r['time_per_step_ms']} | {1000 * r['forces_mae']:.1f} | {1000 * r['forces_rmse']:.1f} | "
        f"{1000 * r['energy_mae']:.1f} |\n"
        for r in rows
    )
    return head + body
