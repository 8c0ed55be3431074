"""``equiscale bench protein-table``: rows from run records, split checks, the markdown."""

from __future__ import annotations

import argparse
import json

import pytest

from equiscale.bench import protein_table


def _ours(tmp_path, name, task="protein", gap=5, target=None, **test):
    data_args = {
        "path": "data/protein_t4-lysozyme.npz",
        "n_train": 140,
        "n_val": 20,
        "n_test": 30,
        "gap": gap,
    }
    if task == "protein_dynamics":
        data_args["horizon"] = 1
    if target is not None:
        data_args["target"] = target
    res = {
        "task": task,
        "model": name,
        "config": {"data_args": data_args},
        "epochs_run": 2,
        "train_steps": 280,
        "fit_time_s": 1200.0,
        "fit_cpu_s": 1200.0,
        "n_parameters": 12345,
        "test": test,
        "baselines": {"exact short-range forces (forces_long_mae)": 0.1}
        if task == "protein"
        else {"copy": 0.2},
        "command": f"equiscale train --model {name}",
        "git_commit": "abc",
    }
    path = tmp_path / name / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(res))
    return str(path)


def _mace(tmp_path, gap=5):
    res = {
        "task": "protein",
        "model": "mace",
        "data": "data/protein_t4-lysozyme.npz",
        "split": {"n_train": 140, "n_val": 20, "n_test": 30, "gap": gap},
        "epochs_run": 1,
        "train_steps": 140,
        "fit_time_s": 1300.0,
        "n_parameters": 999,
        "test": {"forces_mae": 0.3, "forces_rmse": 0.4, "forces_long_mae": 0.09, "energy_mae": 1.0},
        "mace_command": "mace_run_train --name mace",
    }
    path = tmp_path / "mace" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(res))
    return str(path)


def _args(tmp_path, forces=(), dynamics=(), long=()):
    return argparse.Namespace(
        forces=list(forces),
        dynamics=list(dynamics),
        long=list(long),
        title="T4",
        out=str(tmp_path / "table.json"),
    )


def test_table_rows_and_markdown(tmp_path):
    hyb = _ours(tmp_path, "hybrid", forces_mae=0.25, forces_rmse=0.35, forces_long_mae=0.08, energy_mae=2.0)
    dyn = _ours(tmp_path, "se3hyena", task="protein_dynamics", mse=0.0123)
    rec = protein_table.run(_args(tmp_path, [f"hybrid+coulomb={hyb}", _mace(tmp_path)], [dyn]))
    rows = rec["forces"]["rows"]
    assert [r["model"] for r in rows] == ["hybrid+coulomb", "mace"]
    assert rows[0]["cpu_per_step_s"] == pytest.approx(1200 / 280, abs=0.01)
    assert rows[1]["command"] == "mace_run_train --name mace"
    assert rec["dynamics"]["rows"][0]["mse"] == pytest.approx(0.0123)
    text = (tmp_path / "table.md").read_text()
    assert "| hybrid+coulomb | 12,345 | 2 | 280 | 20.0 | 4.29 | 250.0 | 350.0 | 80.0 | 2000.0 |" in text
    assert "| se3hyena | 12,345 | 2 | 280 | 20.0 | 4.29 | 0.0123 |" in text
    assert "exact short-range forces (forces_long_mae): 100.0" in text


def test_table_refuses_mixed_splits_and_tasks(tmp_path):
    a = _ours(tmp_path, "hybrid", forces_mae=0.2, forces_rmse=0.3, energy_mae=1.0)
    with pytest.raises(ValueError, match="different data or splits"):
        protein_table.run(_args(tmp_path, [a, _mace(tmp_path, gap=0)]))
    dyn = _ours(tmp_path, "egnn", task="protein_dynamics", mse=0.1)
    with pytest.raises(ValueError, match="expected 'protein'"):
        protein_table.run(_args(tmp_path, [dyn]))
    with pytest.raises(FileNotFoundError, match="--forces"):
        protein_table.run(_args(tmp_path, [str(tmp_path / "missing.json")]))
    c = _ours(tmp_path, "other", forces_mae=0.2, forces_rmse=0.3, energy_mae=1.0)
    res = json.loads(open(c).read())
    res["baselines"]["exact short-range forces (forces_long_mae)"] = 0.2  # another test set
    open(c, "w").write(json.dumps(res))
    with pytest.raises(ValueError, match="not the same test set"):
        protein_table.run(_args(tmp_path, [a, c]))
    with pytest.raises(ValueError, match="at least one run"):
        protein_table.run(_args(tmp_path))


def test_long_range_target_runs_get_their_own_table(tmp_path):
    """target=long runs go under --long, in their own section; a target=long run given to --forces
    (or a total run to --long) is refused: the two error scales must not share a column."""
    total = _ours(tmp_path, "hybrid", forces_mae=0.25, forces_rmse=0.35, forces_long_mae=0.08, energy_mae=2.0)
    long = _ours(
        tmp_path,
        "e2former",
        target="long",
        forces_mae=0.04,
        forces_rmse=0.06,
        forces_long_mae=0.07,
        energy_mae=9.0,
    )
    rec = protein_table.run(_args(tmp_path, [total], long=[f"e2former-long={long}"]))
    assert [r["model"] for r in rec["long"]["rows"]] == ["e2former-long"]
    assert rec["long"]["split"][-1] == "long" and rec["forces"]["split"][-1] == "total"
    text = (tmp_path / "table.md").read_text()
    assert "## The long-range part alone (target=long)" in text
    assert "| e2former-long | 12,345 | 2 | 280 | 20.0 | 4.29 | 40.0 | 60.0 | 70.0 | 9000.0 |" in text
    with pytest.raises(ValueError, match="target 'long'"):
        protein_table.run(_args(tmp_path, [total, long]))
    with pytest.raises(ValueError, match="--long"):
        protein_table.run(_args(tmp_path, long=[total]))
