"""The protein forces task: contiguous splits, long-range metrics, a 2-step run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openmm")
pytest.importorskip("openmmtools")

from equiscale.cli import main  # noqa: E402
from equiscale.train.tasks.protein import collate_protein, long_range_errors, protein_task  # noqa: E402

CONFIG = Path(__file__).parent / "data" / "tiny_protein.yaml"


@pytest.fixture(scope="module")
def frames_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("protein_task")
    out = folder / "ala.npz"
    assert (
        main(
            [
                "data",
                "protein",
                "--frames",
                "8",
                "--interval",
                "5",
                "--equilibrate",
                "5",
                "--platform",
                "Reference",
                "--cutoff",
                "4",
                "--fraction-cutoffs",
                "--out",
                str(out),
                "--cache-dir",
                str(folder / "cache"),
            ]
        )
        == 0
    )
    return out


def test_long_range_errors_by_hand():
    f = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    fl = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    pred = f + torch.tensor([[0.2, 7.0, 0.0], [1.0, 0.0, -0.4], [5.0, 5.0, 5.0]])
    out = long_range_errors(pred, f, fl)
    # errors along u: 0.2 (atom 0), -0.4 (atom 1), 0 (atom 2: no long-range force)
    assert out["forces_long_mae"].item() == pytest.approx(0.6 / 3)
    assert out["forces_long_rmse"].item() == pytest.approx(np.sqrt((0.04 + 0.16) / 3))
    # exact short-range forces miss exactly |F_long|
    assert long_range_errors(f - fl, f, fl)["forces_long_mae"].item() == pytest.approx(3.5 / 3)
    with pytest.raises(ValueError, match="forces_long"):
        long_range_errors(pred, f, fl[:2])


def test_task_splits_and_metrics(frames_path):
    from equiscale.data.cache import load_npz

    pos = load_npz(frames_path)["pos"]
    task = protein_task(str(frames_path), n_train=4, n_val=1, n_test=1, gap=1)
    assert len(task.train) == 4 and len(task.val) == 1 and len(task.test) == 1
    # contiguous time blocks with a gap of one frame: train 0..3, val 5, test 7
    for ds, frames in ((task.train, [0, 1, 2, 3]), (task.val, [5]), (task.test, [7])):
        for item, k in zip(ds.items, frames):
            assert torch.equal(item["pos"], torch.as_tensor(pos[k], dtype=torch.float32))
    task = protein_task(str(frames_path), n_train=4, n_val=2, n_test=2)
    batch = collate_protein([task.test[i] for i in range(2)])
    assert batch["forces_long"].shape == batch["forces"].shape == (44, 3)
    pred = {"energy": batch["energy"], "forces": batch["forces"] - batch["forces_long"]}
    m = task.metrics(pred, batch)
    assert m["forces_long_mae"].item() == pytest.approx(batch["forces_long"].norm(dim=-1).mean().item())
    assert m["energy_mae"].item() == 0.0
    base = task.baselines()
    assert base["exact short-range forces (forces_long_mae)"] > 0
    with pytest.raises(ValueError, match="exceeds the 8 frames"):
        protein_task(str(frames_path), n_train=6, n_val=2, n_test=2)
    with pytest.raises(ValueError, match="force_weight"):
        protein_task(str(frames_path), n_train=4, n_val=1, n_test=1, force_weight=-1.0)
    with pytest.raises(FileNotFoundError, match="equiscale data protein"):
        protein_task(str(frames_path.with_name("missing.npz")))


def test_corrupt_file_is_refused(frames_path, tmp_path):
    from equiscale.data.cache import CacheError

    with np.load(frames_path) as z:
        raw = {k: z[k] for k in z.files}
    raw["energy"] = raw["energy"] + 1.0
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as f:
        np.savez(f, **raw)
    with pytest.raises(CacheError, match="checksum"):
        protein_task(str(bad), n_train=4, n_val=1, n_test=1)


@pytest.mark.parametrize("model", ["e2former", "hybrid"])
def test_train_two_steps_through_the_cli(frames_path, tmp_path, capsys, model):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(CONFIG),
                "--set",
                f"data_args.path={frames_path}",
                "--set",
                f"model={model}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    test = results["test"]
    for key in ("forces_mae", "forces_rmse", "energy_mae", "forces_long_mae", "forces_long_rmse"):
        assert np.isfinite(test[key]) and test[key] > 0
    assert (out / "checkpoints" / "best.ckpt").is_file()
    printed = capsys.readouterr().out
    assert "test forces_long_mae" in printed and "exact short-range forces" in printed


def test_shipped_protein_configs_load_and_match():
    from equiscale import registry
    from equiscale.train import load_config

    root = Path(__file__).parent.parent / "configs"
    cfgs = {name: load_config(root / f"{name}_protein.yaml") for name in ("hybrid", "e2former")}
    assert cfgs["hybrid"].data_args == cfgs["e2former"].data_args  # same data and split
    shared = ("channels", "lmax", "num_layers", "heads", "num_radial", "cutoff")
    assert all(cfgs["hybrid"].model_args[k] == cfgs["e2former"].model_args[k] for k in shared)
    cfgs["egnn"] = load_config(root / "egnn_protein.yaml")
    assert cfgs["egnn"].data_args == cfgs["hybrid"].data_args
    # equal budgets: every forces peer stops at the same CPU time, with the same schedule
    budget = {(c.max_cpu_time, c.scheduler, c.ema_decay) for c in cfgs.values()}
    assert len(budget) == 1 and next(iter(budget))[0] is not None
    dyn = {
        n: load_config(root / f"{n}_protein_dynamics.yaml")
        for n in ("hyena", "hybrid", "transformer", "egnn")
    }
    assert len({(c.max_cpu_time, repr(c.data_args)) for c in dyn.values()}) == 1
    assert dyn["hybrid"].model_args["channels"] == cfgs["hybrid"].model_args["channels"]
    cfgs.update(dyn)
    for cfg in cfgs.values():
        registry.load(registry.MODELS, cfg.model, "model")(**cfg.model_args)


def test_dynamics_task_pairs_and_baselines(frames_path):
    from equiscale.data.cache import load_npz
    from equiscale.train.tasks.protein import protein_dynamics_task

    arrays = load_npz(frames_path)
    task = protein_dynamics_task(str(frames_path), horizon=1, n_train=4, n_val=2, n_test=2)
    # 8 frames: train 0..3 -> pairs (0, 1), (1, 2), (2, 3); val (4, 5); test (6, 7)
    assert (len(task.train), len(task.val), len(task.test)) == (3, 1, 1)
    for ds, t in ((task.train, [0, 1, 2]), (task.val, [4]), (task.test, [6])):
        for i, k in enumerate(t):
            assert torch.equal(ds[i]["loc"], torch.as_tensor(arrays["pos"][k], dtype=torch.float32))
            assert torch.equal(ds[i]["vel"], torch.as_tensor(arrays["vel"][k], dtype=torch.float32))
            assert torch.equal(ds[i]["target"], torch.as_tensor(arrays["pos"][k + 1], dtype=torch.float32))
    dt = task.test[0]["dt"].item()
    assert dt == pytest.approx(arrays["time_ps"][7] - arrays["time_ps"][6], rel=1e-6)
    base = task.baselines()
    loc, vel, target = (
        torch.as_tensor(arrays[k][i], dtype=torch.float32) for k, i in (("pos", 6), ("vel", 6), ("pos", 7))
    )
    assert base["untrained: copy frame"] == pytest.approx(((loc - target) ** 2).mean().item(), rel=1e-5)
    assert base["untrained: constant velocity"] == pytest.approx(
        ((loc + dt * vel - target) ** 2).mean().item(), rel=1e-5
    )
    batch = task.collate([task.train[i] for i in range(3)])
    assert batch["loc"].shape == (3, 22, 3) and batch["charges"].shape == (3, 22)
    with pytest.raises(ValueError, match="smaller than n_train"):
        protein_dynamics_task(str(frames_path), horizon=2, n_train=4, n_val=2, n_test=2)
    with pytest.raises(ValueError, match="horizon must be an int"):
        protein_dynamics_task(str(frames_path), horizon=0, n_train=4, n_val=2, n_test=2)


def test_dynamics_two_steps_through_the_cli(frames_path, tmp_path):
    out = tmp_path / "run"
    config = Path(__file__).parent / "data" / "tiny_protein_dynamics.yaml"
    assert (
        main(["train", "--config", str(config), "--set", f"data_args.path={frames_path}", "--out", str(out)])
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert np.isfinite(results["test"]["mse"]) and results["test"]["mse"] > 0
    assert set(results["baselines"]) == {"untrained: copy frame", "untrained: constant velocity"}
    eq = results["equivariance"]  # se3hyena, parity e3, float64; a sequence model: not permutation
    assert max(eq["rotation"], eq["reflection"], eq["translation"]) < 1e-9 and eq["permutation"] > 1e-6


def test_mace_split_files_are_the_task_blocks(frames_path, tmp_path):
    """`bench mace --task protein` trains MACE on exactly the protein task's time blocks and scores
    the same test frames (positions, forces, energies and the long-range part)."""
    from ase.io import read

    from equiscale.bench.mlip import write_protein_splits

    files, ref = write_protein_splits(str(frames_path), str(tmp_path), 2, 2, 2, gap=1)
    task = protein_task(str(frames_path), n_train=2, n_val=2, n_test=2, gap=1, atom_refs=False)
    for name, split in (("train", task.train), ("valid", task.val), ("test", task.test)):
        written = read(files[name], index=":")
        assert len(written) == len(split)
        for atoms, item in zip(written, split.items):
            assert np.allclose(atoms.positions, item["pos"].double().numpy(), atol=1e-5)
            assert np.allclose(atoms.arrays["REF_forces"], item["forces"].double().numpy(), atol=1e-5)
            assert np.array_equal(atoms.numbers, item["z"].numpy())
    assert ref["forces"].shape == ref["forces_long"].shape == (len(task.test) * 22, 3)
    long = torch.cat([item["forces_long"] for item in task.test.items]).double().numpy()
    assert np.allclose(ref["forces_long"], long, atol=1e-6)
    assert np.allclose(ref["energy"], [float(i["energy"]) for i in task.test.items], atol=1e-3)


def test_cpu_time_budget_stops_the_run_cleanly(frames_path, tmp_path):
    """max_cpu_time stops training after the step that reaches the budget, before max_epochs; the run
    still validates, checkpoints and tests, and records its CPU seconds."""
    out = tmp_path / "run"
    argv = ["train", "--config", str(CONFIG), "--set", f"data_args.path={frames_path}", "--out", str(out)]
    assert main([*argv, "--set", "max_epochs=100000", "--max-cpu-time", "00:00:02"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["max_cpu_time"] == "00:00:02"
    assert 2.0 <= res["fit_cpu_s"] and res["epochs_run"] < 100000
    assert res["train_steps"] >= 1 and np.isfinite(res["test"]["forces_mae"])
    assert (out / "checkpoints" / "best.ckpt").is_file()


def test_hybrid_dynamics_through_the_cli(frames_path, tmp_path):
    """The hybrid (and its local-only peer) on the dynamics task: trains, beats nothing in 2 steps
    but records a finite MSE and the float64 equivariance check (no permutation invariance: a
    sequence model)."""
    out = tmp_path / "run"
    config = Path(__file__).parent / "data" / "tiny_protein_dynamics.yaml"
    small = "{channels: 4, lmax: 1, num_layers: 1, heads: 2, num_radial: 4, cutoff: 4.0, filter_hidden: 4}"
    argv = ["train", "--config", str(config), "--set", f"data_args.path={frames_path}", "--out", str(out)]
    assert main([*argv, "--model", "hybrid_dynamics", "--set", f"model_args={small}"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert np.isfinite(res["test"]["mse"])
    eq = res["equivariance"]
    assert max(eq["rotation"], eq["reflection"], eq["translation"]) < 1e-9


def test_equivariance_check_size_is_set_by_the_config(frames_path, tmp_path):
    """equivariance_samples / equivariance_trials bound the float64 check (it dominates short runs
    on big systems); trials 0 leaves it out; the record says what was checked."""
    config = Path(__file__).parent / "data" / "tiny_protein_dynamics.yaml"
    argv = ["train", "--config", str(config), "--set", f"data_args.path={frames_path}"]
    out = tmp_path / "small"
    assert (
        main([*argv, "--out", str(out), "--set", "equivariance_samples=1", "--set", "equivariance_trials=2"])
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert res["equivariance_check"] == {"trials": 2, "samples": 1}
    assert max(res["equivariance"][k] for k in ("rotation", "reflection", "translation")) < 1e-9
    out = tmp_path / "none"
    assert main([*argv, "--out", str(out), "--set", "equivariance_trials=0"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert "equivariance" not in res and "equivariance_check" not in res


def test_long_range_target(frames_path):
    """target="long": the samples hold E^long and F^long; zero forces then score mean |F^long|."""
    from equiscale.data.cache import load_npz

    arrays = load_npz(frames_path)
    task = protein_task(str(frames_path), n_train=4, n_val=2, n_test=2, target="long", atom_refs=False)
    for item, k in zip(task.test.items, (6, 7)):
        assert torch.allclose(item["forces"].double(), torch.from_numpy(arrays["forces_long"][k]), atol=1e-6)
        assert torch.equal(item["forces"], item["forces_long"])
        assert float(item["energy"]) == pytest.approx(arrays["energy_long"][k], rel=1e-6)
    base = task.baselines()
    mean_long = np.abs(arrays["forces_long"][6:8]).mean()
    assert base["mean energy, zero forces (forces_mae)"] == pytest.approx(mean_long, rel=1e-5)
    # the Coulomb forces of the file's charges beyond r_c: that baseline's error is |F_coul - F^long|
    from equiscale.data.protein import coulomb_beyond

    far = np.stack(
        [coulomb_beyond(arrays["pos"][k], arrays["charges"], float(arrays["cutoff"])) for k in (6, 7)]
    )
    key = "exact short-range + Coulomb of the file's charges beyond r_c (forces_mae)"
    assert base[key] == pytest.approx(np.abs(far - arrays["forces_long"][6:8]).mean(), rel=1e-5)
    assert base[key] < 0.5 * mean_long  # the long-range part is mostly the charges' Coulomb forces
    with pytest.raises(ValueError, match="target"):
        protein_task(str(frames_path), n_train=4, n_val=2, n_test=2, target="short")


def test_loss_is_per_atom_energy_plus_forces(frames_path):
    """loss = w_E mean((dE / n)^2) + w_F mean(dF^2): the energy term per atom, as MACE's weighted
    loss (a total-energy MSE grows with n^2 and swamped the forces on 2,603 atoms)."""
    task = protein_task(str(frames_path), n_train=4, n_val=2, n_test=2, energy_weight=2.0, force_weight=30.0)
    batch = task.collate([task.train[i] for i in range(2)])
    g = torch.Generator().manual_seed(0)
    pred = {
        "energy": batch["energy"] + torch.randn(2, generator=g),
        "forces": batch["forces"] + 0.1 * torch.randn(batch["forces"].shape, generator=g),
    }
    de = (pred["energy"] - batch["energy"]) / 22.0
    df = pred["forces"] - batch["forces"]
    expected = 2.0 * (de**2).mean() + 30.0 * (df**2).mean()
    assert task.loss(pred, batch).item() == pytest.approx(expected.item(), rel=1e-6)
