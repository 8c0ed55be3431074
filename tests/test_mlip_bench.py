"""The MACE side-by-side plumbing: split files hold exactly the md task's frames, the metric is the
task's, MACE's log is read for its training time, and the table refuses runs on different splits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra
import torch

from equiscale.bench import mace, mlip, mlip_table
from equiscale.data.extxyz import read_extxyz
from equiscale.train.tasks.molecules import _energy_metrics, md_task, split_indices

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "md_CH3CH2OH_xtb.extxyz"


def test_splits_are_the_md_task_frames(tmp_path):
    from ase.io import read

    files = mlip.write_splits(str(DATA), str(tmp_path), 50, 10, 20, seed=3)
    frames = read_extxyz(DATA)
    task = md_task(str(DATA), n_train=50, n_val=10, n_test=20, seed=3)
    _, _, test_idx = split_indices(len(frames), 50, 10, 20, 3)
    written = read(files["test"], index=":")
    assert len(written) == 20 == len(task.test)
    for atoms, k, item in zip(written, test_idx, task.test.items):
        f = frames[int(k)]
        assert np.allclose(atoms.positions, f.pos, atol=1e-7)
        assert np.allclose(atoms.arrays["REF_forces"], f.forces, atol=1e-7)
        assert atoms.info["REF_energy"] == pytest.approx(f.energy, abs=1e-8)
        assert torch.allclose(item["pos"].double(), torch.from_numpy(f.pos), atol=1e-5)


def test_metric_equals_the_task_metric():
    g = np.random.default_rng(0)
    e, pe = g.normal(size=5), g.normal(size=5)
    f, pf = g.normal(size=(20, 3)), g.normal(size=(20, 3))
    ours = mlip.force_energy_errors(pe, pf, e, f)
    batch = {"energy": torch.tensor(e), "forces": torch.tensor(f), "n_atoms": torch.full((5,), 4)}
    task = _energy_metrics({"energy": torch.tensor(pe), "forces": torch.tensor(pf)}, batch)
    for k in ("energy_mae", "forces_mae", "forces_rmse"):
        assert ours[k] == pytest.approx(float(task[k]), rel=1e-12)


def test_mace_log_times(tmp_path):
    log = tmp_path / "mace.log"
    log.write_text(
        "2026-11-30 10:00:00.000 INFO: Started training, reporting errors\n"
        "2026-11-30 10:00:30.500 INFO: Epoch 0: head: Default, loss=1\n"
        "noise line\n"
        "2026-11-30 10:01:00.000 INFO: Epoch 1: head: Default, loss=0.5\n"
    )
    seconds, epochs = mace._log_times(log)
    assert epochs == 2 and seconds == pytest.approx(60.0)
    (tmp_path / "empty.log").write_text("nothing\n")
    with pytest.raises(RuntimeError, match="no training epochs"):
        mace._log_times(tmp_path / "empty.log")


def test_mace_needs_the_peers_venv(tmp_path):
    parser = argparse.ArgumentParser()
    mace.add_arguments(parser)
    args = parser.parse_args(
        ["--peers-python", str(tmp_path / "none" / "python"), "--out", str(tmp_path / "m")]
    )
    with pytest.raises(FileNotFoundError, match="make peers"):
        mace.run(args)


def _fake_result(path: Path, model: str, data: str, fmae: float) -> Path:
    path.mkdir(parents=True)
    res = {
        "model": model,
        "n_parameters": 10,
        "epochs_run": 2,
        "train_steps": 20,
        "fit_time_s": 60.0,
        "test": {"forces_mae": fmae, "forces_rmse": 2 * fmae, "energy_mae": 0.001},
        "command": f"equiscale train {model}",
        "git_commit": "abc",
    }
    if model == "mace":
        res |= {"data": data, "split": {"n_train": 10, "n_val": 2, "n_test": 3, "seed": 0}}
    else:
        res |= {"config": {"data_args": {"path": data, "n_train": 10, "n_val": 2, "n_test": 3}}}
    (path / "results.json").write_text(json.dumps(res))
    return path / "results.json"


def test_table_rows_and_split_check(tmp_path):
    a = _fake_result(tmp_path / "a", "mace", "data/x.extxyz", 0.01)
    b = _fake_result(tmp_path / "b", "e2former", "data/x.extxyz", 0.02)
    c = _fake_result(tmp_path / "c", "egnn_energy", "data/y.extxyz", 0.03)
    parser = argparse.ArgumentParser()
    mlip_table.add_arguments(parser)
    rec = mlip_table.run(parser.parse_args(["--runs", str(a), str(b), "--out", str(tmp_path / "t.json")]))
    assert [r["model"] for r in rec["rows"]] == ["mace", "e2former"]
    assert rec["rows"][0]["time_per_step_ms"] == pytest.approx(3000.0)
    md = (tmp_path / "t.md").read_text()
    assert "| mace | a | 10 | 2 | 1.0 | 3000.0 | 10.0 | 20.0 | 1.0 |" in md
    with pytest.raises(ValueError, match="different data or splits"):
        mlip_table.run(parser.parse_args(["--runs", str(a), str(c), "--out", str(tmp_path / "u.json")]))
