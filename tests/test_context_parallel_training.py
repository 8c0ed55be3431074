"""Context-parallel training through ``equiscale train --context-parallel 2`` (2 gloo processes, one
sequence split over both): its final weights and test metrics equal a single-process run's (to
float64 rounding), and a run SIGKILLed (the whole process group) and resumed ends with the weights,
optimizer state, epochs and test metrics of an unbroken one, bitwise."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("lightning")  # equiscale.train: the train extra
import torch

from equiscale.train.config import TrainConfig
from reliability_catalogue.faults import _cmd, _env, kill_resume_cycles

CONFIG = str(Path(__file__).parent / "data" / "tiny_recall_cp.yaml")
CP = ("--context-parallel", "2")


@pytest.mark.slow
def test_context_parallel_run_killed_and_resumed_equals_unbroken_and_single_process(tmp_path):
    result = kill_resume_cycles(tmp_path, kills=1, ddp=True, epochs=3, seed=2, config=CONFIG, extra=CP)
    assert result["kills"] == 1, result
    assert result["identical"], result["differences"]
    single = tmp_path / "single"
    subprocess.run(
        _cmd(single, 3, False, False, CONFIG), env=_env(), check=True, capture_output=True, timeout=600
    )
    a = torch.load(single / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "unbroken" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-10), k
    ta = json.loads((single / "results.json").read_text())["test"]
    tb = json.loads((tmp_path / "unbroken" / "results.json").read_text())["test"]
    assert ta["mse"] == pytest.approx(tb["mse"], rel=1e-10)
    assert json.loads((tmp_path / "unbroken" / "results.json").read_text())["config"]["context_parallel"] == 2


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"context_parallel": 2}, "needs strategy 'ddp'"),
        ({"context_parallel": 2, "strategy": "ddp", "devices": 3}, "must divide"),
        ({"context_parallel": 0}, "context_parallel"),
    ],
)
def test_context_parallel_config_errors_name_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(task="recall", model="se3hyena", **fields)


def test_context_parallel_needs_a_model_that_splits_sequences():
    from equiscale.train.lit_module import TaskModule

    cfg = TrainConfig(task="nbody", model="egnn", context_parallel=2, strategy="ddp", devices=2)
    with pytest.raises(ValueError, match="se3hyena"):
        TaskModule(cfg.to_dict())


def test_memory_check_estimates_one_rank_of_a_context_parallel_run():
    from equiscale.train.memory import check_config_memory

    kw = dict(
        task="recall",
        model="se3hyena",
        data_args={"length": 65536},
        batch_size=1,
        accelerator="cpu",
        model_args={"scalar_channels": 8, "vector_channels": 4, "depth": 1},
    )
    one = check_config_memory(TrainConfig(**kw))
    four = check_config_memory(TrainConfig(**kw, context_parallel=4, strategy="ddp", devices=4))
    assert one is not None and four is not None
    assert 0.3 * one < four < 0.5 * one  # ~1.4 / 4 of one process, plus what does not scale
