"""Geometric associative recall: the generator's definition, symmetries and metrics."""

from __future__ import annotations

import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra
import torch

from equiscale.data.recall import (
    RecallDataset,
    collate_recall,
    make_recall_sample,
    recall_accuracy,
)
from equiscale.train.tasks.recall import evaluate_lengths, recall_task


@pytest.mark.parametrize("length", [3, 8, 65])
def test_sample_structure(length: int) -> None:
    gen = torch.Generator().manual_seed(length)
    s = make_recall_sample(length, 4, rotate=False, generator=gen, dtype=torch.float64)
    pos, tt = s["pos"], s["token_type"]
    assert pos.shape == (length, 3) and tt.shape == (length, 3)
    start = length - 1 - 2 * ((length - 1) // 2)  # padding tokens
    assert tt[:start].abs().sum() == 0
    keys, values = s["keys"], s["values"]
    for j in range(start, length - 1, 2):
        assert tt[j, 0] == 1 and tt[j + 1, 1] == 1
        a = int(((keys - pos[j]).norm(dim=-1)).argmin())
        assert (keys[a] - pos[j]).abs().max() == 0
        assert (values[a] - pos[j + 1]).abs().max() == 0  # value paired with key a
    assert tt[-1, 2] == 1
    a = int(s["answer"])
    assert (pos[-1] - keys[a]).abs().max() == 0 and (s["target"] - values[a]).abs().max() == 0
    shown = {int(((keys - pos[j]).norm(dim=-1)).argmin()) for j in range(start, length - 1, 2)}
    assert a in shown  # the query key occurs in the sequence


def test_rotation_and_translation_applied_consistently() -> None:
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    plain = make_recall_sample(21, 8, rotate=False, generator=g1, dtype=torch.float64)
    moved = make_recall_sample(21, 8, rotate=True, translate=True, generator=g2, dtype=torch.float64)
    # same draws; the rotated sample's pairwise distances and answer agree with the plain one
    d0 = torch.cdist(plain["pos"], plain["pos"])
    d1 = torch.cdist(moved["pos"], moved["pos"])
    assert (d0 - d1).abs().max() < 1e-12
    assert int(plain["answer"]) == int(moved["answer"])
    assert (moved["pos"] - plain["pos"]).abs().max() > 1e-3
    t_diff = moved["target"] - moved["values"][int(moved["answer"])]
    assert t_diff.abs().max() < 1e-12


def test_dataset_deterministic_and_metrics() -> None:
    ds = RecallDataset(10, 33, 16, seed=3)
    a, b = ds[4], ds[4]
    assert all(torch.equal(a[k], b[k]) for k in a)
    batch = collate_recall([ds[i] for i in range(10)])
    assert batch["pos"].shape == (10, 33, 3) and batch["values"].shape == (10, 16, 3)
    assert recall_accuracy(batch["target"], batch) == 1.0
    wrong = batch["values"][torch.arange(10), (batch["answer"] + 1) % 16]
    assert recall_accuracy(wrong, batch) == 0.0
    with pytest.raises(ValueError, match="length"):
        RecallDataset(3, 2, 4)
    with pytest.raises(IndexError):
        ds[10]


def test_task_and_length_evaluation() -> None:
    task = recall_task(length=17, vocab=4, n_train=8, n_val=4, n_test=4)
    batch = task.collate([task.train[i] for i in range(4)])
    m = task.metrics(batch["target"], batch)
    assert m["accuracy"] == 1.0 and m["mse"] == 0.0
    assert task.loss(batch["target"] + 1, batch).item() == pytest.approx(1.0)

    class Oracle(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, batch):  # look the query up in the sequence: an exact solver
            pos, tt = batch["pos"], batch["token_type"]
            q = pos[:, -1:]
            d = (pos[:, :-1] - q).norm(dim=-1) + 1e9 * (1 - tt[:, :-1, 0])
            j = d.argmin(-1)
            return pos[torch.arange(pos.shape[0]), j + 1]

    res = evaluate_lengths(Oracle(), [9, 30], vocab=4, n=20, batch_size=7, translate=True)
    assert res[9]["accuracy"] == 1.0 and res[30]["accuracy"] == 1.0


def test_recall_vs_length_command_writes_record_and_plot(tmp_path):
    import json

    from equiscale.train import fit, load_config
    from equiscale.train.tasks.recall import main

    cfg = load_config(
        None,
        [
            "task=recall",
            "model=se3hyena",
            "data_args.length=9",
            "data_args.vocab=4",
            "data_args.n_train=16",
            "data_args.n_val=8",
            "data_args.n_test=8",
            "model_args={scalar_channels: 4, vector_channels: 2, "
            "depth: 1, causal: false, scalar_in: 3, length_norm: true}",
            "batch_size=8",
            "max_epochs=1",
            "progress=false",
            f"out_dir={tmp_path / 'run'}",
        ],
    )
    res = fit(cfg)
    out = tmp_path / "len.json"
    record = main(
        [
            "--checkpoint",
            res["best_checkpoint"],
            "--lengths",
            "9",
            "17",
            "--n",
            "6",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    by_length = saved["models"][res["best_checkpoint"]]["by_length"]
    assert set(by_length) == {"9", "17"} and saved["command"] and record["samples_per_length"] == 6
    assert all(0.0 <= v["accuracy"] <= 1.0 and v["mse"] > 0 for v in by_length.values())
    assert out.with_suffix(".png").stat().st_size > 1000
