"""Soft equivariance (Kim et al. 2023): batched group actions, the penalty, its schedules, the
trainer wiring by config, and that it lowers the equivariance error of a trained GNN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lightning")  # equiscale.train: the train extra
import torch

from equiscale.cli import format_results
from equiscale.models.baselines import GNNBaseline
from equiscale.models.egnn import EGNN
from equiscale.testing import random_rotation, relative_equivariance_error, transform
from equiscale.train import evaluate, fit, load_config
from equiscale.train.lit_module import TaskModule
from equiscale.train.soft_equivariance import SoftEquivarianceLoss, act, random_rotations
from equiscale.train.task import SymmetrySpec, TaskData
from equiscale.train.tasks.nbody import NBODY_SYMMETRY, nbody_task

ALL = {"rotation": 1.0, "reflection": 1.0, "translation": 1.0, "permutation": 1.0}


def _batch(b: int = 4, n: int = 5, dtype=torch.float64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "loc": torch.randn(b, n, 3, generator=g, dtype=dtype),
        "vel": torch.randn(b, n, 3, generator=g, dtype=dtype),
        "charges": torch.randint(0, 2, (b, n), generator=g).to(dtype) * 2 - 1,
        "target": torch.randn(b, n, 3, generator=g, dtype=dtype),
    }


def test_batched_action_matches_testing_transform() -> None:
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    R = random_rotation(torch.float64, reflection=True)
    t = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    perm = torch.tensor([2, 0, 4, 1, 3])
    for kind in ("vector", "position", "pseudovector", "pseudoscalar", "scalar"):
        ours = act(x, kind, R.expand(3, 3, 3), t.expand(3, 3), perm.expand(3, 5), node_dim=1)
        ref = transform(x, kind, R, t, perm, node_dim=1)
        assert torch.allclose(ours, ref, atol=1e-14), kind
    q = random_rotations(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    assert torch.allclose(q @ q.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(q), torch.ones(64, dtype=torch.float64))
    improper = random_rotations(8, reflection=True, dtype=torch.float64)
    assert torch.allclose(torch.linalg.det(improper), -torch.ones(8, dtype=torch.float64))


def test_penalty_is_zero_for_egnn_and_positive_for_gnn() -> None:
    torch.manual_seed(0)
    batch = _batch()
    loss = SoftEquivarianceLoss(NBODY_SYMMETRY, ALL, schedule="constant")
    egnn = EGNN(hidden=16, layers=2).double()
    _, logs = loss(egnn, batch, egnn(batch), torch.tensor(1.0), step=0)
    assert max(logs[f"equiv_{s}"] for s in ALL) < 1e-24, logs
    gnn = GNNBaseline(hidden=16, layers=2).double()
    penalty, logs = loss(gnn, batch, gnn(batch), torch.tensor(1.0), step=0)
    assert logs["equiv_permutation"] < 1e-24  # the GNN is permutation-equivariant
    for s in ("rotation", "reflection", "translation"):
        assert logs[f"equiv_{s}"] > 1e-6
    assert penalty.requires_grad and penalty.item() == pytest.approx(
        sum(logs[f"equiv_{s}"] for s in ALL), rel=1e-9
    )


def test_schedules() -> None:
    spec = NBODY_SYMMETRY
    const = SoftEquivarianceLoss(spec, {"rotation": 0.5}, schedule="constant")
    assert const.strength("rotation", 0) == const.strength("rotation", 10**6) == 0.5
    warm = SoftEquivarianceLoss(spec, {"rotation": 0.5}, schedule="warmup", warmup_steps=100)
    assert [warm.strength("rotation", s) for s in (0, 50, 100, 400)] == [0.0, 0.25, 0.5, 0.5]
    auto = SoftEquivarianceLoss(
        spec, {"rotation": 0.5}, schedule="auto", warmup_steps=0, ema=0.5, max_ratio=10.0
    )
    auto._update("task", 2.0)
    auto._update("rotation", 8.0)
    assert auto.strength("rotation", 1) == pytest.approx(0.5 * 2.0 / 8.0)  # s * Lbar / Pbar
    auto._update("rotation", 0.0)  # moving average: 0.5 * 8 + 0.5 * 0 = 4
    assert auto.averages["rotation"] == 4.0
    auto.averages["rotation"] = 1e-9
    assert auto.strength("rotation", 1) == pytest.approx(0.5 * 10.0)  # capped at max_ratio


def _train(soft: SoftEquivarianceLoss | None, task: TaskData, steps: int = 150) -> GNNBaseline:
    torch.manual_seed(0)
    model = GNNBaseline(hidden=16, layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        idx = torch.randint(len(task.train), (50,), generator=g).tolist()
        batch = task.collate(task.train.__getitems__(idx))
        pred = model(batch)
        loss = task.loss(pred, batch)
        if soft is not None:
            loss = loss + soft(model, batch, pred, loss.detach(), step)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_soft_penalty_lowers_the_equivariance_error_of_a_trained_gnn() -> None:
    task = nbody_task(n_train=200, n_val=100, n_test=100)
    test = task.collate(task.test.__getitems__(list(range(100))))
    test = {k: v for k, v in test.items() if k != "target"}

    def errors(model: torch.nn.Module) -> dict[str, float]:
        return relative_equivariance_error(
            model.double(),
            test,
            NBODY_SYMMETRY.inputs,
            ["position"],
            node_dims=1,
            out_node_dims=[1],
            batch_dim=0,
            trials=4,
        )

    plain = errors(_train(None, task))
    strengths = {"rotation": 1.0, "reflection": 1.0, "translation": 1.0}
    soft = errors(_train(SoftEquivarianceLoss(NBODY_SYMMETRY, strengths, schedule="constant"), task))
    for s in strengths:
        assert soft[s] < 0.5 * plain[s], (s, soft, plain)


def test_trainer_takes_soft_equivariance_from_the_config(tmp_path: Path) -> None:
    sets = [
        "data_args.n_train=200",
        "data_args.n_val=100",
        "data_args.n_test=100",
        "model=gnn",
        "model_args.hidden=16",
        "model_args.layers=2",
        "batch_size=50",
        "eval_batch_size=100",
        "progress=false",
        "max_epochs=2",
        f"out_dir={tmp_path / 'run'}",
        "soft_equivariance={rotation: 0.5, permutation: 0.5, schedule: warmup, warmup_steps: 4}",
    ]
    res = fit(load_config(None, sets))
    assert set(res["equivariance"]) == {"rotation", "reflection", "translation", "permutation"}
    assert res["equivariance"]["permutation"] < 1e-12 < res["equivariance"]["rotation"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["config"]["soft_equivariance"]["rotation"] == 0.5
    header = next((tmp_path / "run" / "logs").glob("version_*/metrics.csv")).read_text().split("\n")[0]
    for column in ("train/equiv_rotation", "train/lambda_rotation", "train/equiv_permutation"):
        assert column in header
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert set(ckpt["soft_equivariance_averages"]) == {"task", "rotation", "permutation"}
    # eval reports the same equivariance errors (same split, seeds and weights)
    metrics = evaluate(res["best_checkpoint"], "test", progress=False)
    for name, value in res["equivariance"].items():
        assert metrics[f"equiv_{name}"] == pytest.approx(value, rel=1e-6, abs=1e-15)
    assert "relative equivariance error: rotation" in format_results(res)


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(ValueError, match="soft_equivariance: unknown symmetry 'scaling'"):
        load_config(None, ["soft_equivariance={scaling: 1.0}"])
    with pytest.raises(ValueError, match="soft_equivariance.rotation"):
        load_config(None, ["soft_equivariance={rotation: -1.0}"])
    with pytest.raises(ValueError, match="soft_equivariance.schedule"):
        load_config(None, ["soft_equivariance={rotation: 1.0, schedule: cyclic}"])
    with pytest.raises(ValueError, match="soft_equivariance.warmup_steps"):
        load_config(None, ["soft_equivariance={rotation: 1.0, warmup_steps: 1.5}"])
    with pytest.raises(ValueError, match="names no symmetry"):
        load_config(None, ["soft_equivariance={schedule: auto}"])
    with pytest.raises(ValueError, match="not supported"):
        SoftEquivarianceLoss(SymmetrySpec({"x": ("sh", 2)}, "position"), {"rotation": 1.0})
    cfg = load_config(None, ["soft_equivariance={rotation: 1.0}", "model=gnn"]).to_dict()
    no_symmetry = TaskData(train=[], val=[], test=[], collate=list, loss=None, metrics=None)
    with pytest.raises(ValueError, match="declares no symmetry"):
        TaskModule(cfg, no_symmetry)
