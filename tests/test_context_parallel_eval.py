"""Context parallelism combined with data parallelism, launched by torchrun, and evaluation of a
checkpoint split over processes.

- ``torchrun --nproc-per-node 4 ... --devices 4 --context-parallel 2 --batch-size 16``: two
  data-parallel groups of two context-parallel ranks. Group ``g`` takes samples ``g, g + 2, ...`` of
  the epoch's permutation, so step ``k`` sees the union of both groups' batches, which is batch ``k``
  of a one-process run with ``--batch-size 32`` and the same seed: the weights must agree to
  float64 rounding.
- The checkpoint of that run is an ordinary one: ``equiscale eval`` reads it as one process, as a
  context-parallel group that Lightning launches, and under torchrun, with the same metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

CONFIG = str(Path(__file__).parent / "data" / "tiny_recall_cp.yaml")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC + (os.pathsep + path if path else "")}


def _torchrun(n: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={n}",
        "-m",
        "equiscale.cli",
        *args,
    ]


def _equiscale(*args: str) -> list[str]:
    return [sys.executable, "-m", "equiscale.cli", *args]


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dpcp")
    common = ("train", "--config", CONFIG, "--epochs", "2", "--no-progress")
    _run(
        _torchrun(
            4,
            *common,
            "--strategy",
            "ddp",
            "--devices",
            "4",
            "--context-parallel",
            "2",
            "--batch-size",
            "16",
            "--out",
            str(root / "dpcp"),
        )
    )
    _run(_equiscale(*common, "--batch-size", "32", "--out", str(root / "single")))
    yield {"dpcp": root / "dpcp", "single": root / "single"}
    shutil.rmtree(root, ignore_errors=True)


def test_data_times_context_parallel_under_torchrun_equals_one_process(runs):
    a = torch.load(runs["dpcp"] / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(runs["single"] / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 4  # 64 samples / 32 per step x 2 epochs
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.allclose(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-10), k
    ra = json.loads((runs["dpcp"] / "results.json").read_text())
    rb = json.loads((runs["single"] / "results.json").read_text())
    assert ra["test"]["mse"] == pytest.approx(rb["test"]["mse"], rel=1e-10)
    assert ra["config"]["context_parallel"] == 2 and ra["config"]["devices"] == 4


def test_eval_context_parallel_equals_one_process_however_launched(runs, tmp_path):
    ckpt = str(runs["dpcp"] / "checkpoints" / "last.ckpt")  # trained context parallel
    one = tmp_path / "one.json"
    out = _run(_equiscale("eval", "--checkpoint", ckpt, "--no-progress", "--json", str(one)))
    assert "test mse" in out
    lightning = tmp_path / "lightning.json"
    _run(
        _equiscale(
            "eval", "--checkpoint", ckpt, "--no-progress", "--context-parallel", "2", "--json", str(lightning)
        )
    )
    elastic = tmp_path / "torchrun.json"
    out = _run(
        _torchrun(
            2,
            "eval",
            "--checkpoint",
            ckpt,
            "--no-progress",
            "--context-parallel",
            "2",
            "--json",
            str(elastic),
        )
    )
    assert out.count("test mse") == 1  # one process prints
    ref = json.loads(one.read_text())["metrics"]
    for path in (lightning, elastic):
        got = json.loads(path.read_text())
        assert got["context_parallel"] == 2
        assert got["metrics"].keys() == ref.keys()
        for k, v in ref.items():
            assert got["metrics"][k] == pytest.approx(v, rel=1e-10, abs=1e-12), (path.name, k)
    results = json.loads((runs["dpcp"] / "results.json").read_text())["test"]
    assert ref["mse"] == pytest.approx(results["mse"], rel=1e-10)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_eval_context_parallel_rejects_bad_sizes(runs, value):
    ckpt = str(runs["single"] / "checkpoints" / "last.ckpt")
    done = subprocess.run(
        _equiscale("eval", "--checkpoint", ckpt, "--context-parallel", value),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "context_parallel" in done.stderr


def test_eval_context_parallel_needs_a_model_that_splits_sequences(tmp_path):
    from equiscale.train import evaluate, fit, load_config

    cfg = load_config(
        None,
        [
            "data_args.n_train=8",
            "data_args.n_val=4",
            "data_args.n_test=4",
            "model_args.hidden=8",
            "model_args.layers=1",
        ],
        task="nbody",
        model="egnn",
        max_epochs=1,
        batch_size=4,
        out_dir=str(tmp_path / "egnn"),
        progress=False,
    )
    fit(cfg)
    with pytest.raises(ValueError, match="se3hyena"):
        evaluate(tmp_path / "egnn" / "checkpoints" / "last.ckpt", context_parallel=2)
