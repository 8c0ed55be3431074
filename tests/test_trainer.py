"""The trainer: end to end, exact resume after SIGKILL, DDP on 2 CPU processes, safe failures."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("lightning")  # equiscale.train: the train extra
import torch

from equiscale.cli import main
from equiscale.train import evaluate, fit, load_checkpoint, load_config
from equiscale.train.plots import read_metrics

TINY = [
    "data_args.n_train=200",
    "data_args.n_val=100",
    "data_args.n_test=100",
    "model_args.hidden=16",
    "model_args.layers=2",
    "batch_size=50",
    "eval_batch_size=100",
    "progress=false",
]


def _cfg(out: Path, *extra: str):
    return load_config(None, [*TINY, f"out_dir={out}", *extra])


def test_fit_writes_results_checkpoints_and_plots(tmp_path):
    cfg = _cfg(tmp_path / "run", "max_epochs=3")
    res = fit(cfg)
    assert res["epochs_run"] == 3
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2  # refreshed every epoch, not only when validation improves
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert Path(res["best_checkpoint"]).name == "best.ckpt"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in ("command", "git_commit", "device", "versions", "wall_time_s", "test"):
        assert key in saved
    assert 0 < saved["test"]["mse"] < saved["baselines"]["untrained: copy frame"]
    # eval of the best checkpoint reproduces the test metric; checkpoints load with weights_only
    again = evaluate(res["best_checkpoint"], "test", progress=False)
    assert again["mse"] == pytest.approx(saved["test"]["mse"], rel=1e-5)
    torch.load(res["best_checkpoint"], weights_only=True)
    assert (tmp_path / "run" / "learning_curve.png").is_file()
    assert (tmp_path / "run" / "trajectories.png").is_file()


def test_existing_run_is_not_overwritten_and_missing_checkpoint_is_named(tmp_path):
    cfg = _cfg(tmp_path / "run", "max_epochs=1")
    fit(cfg)
    before = (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        fit(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        fit(_cfg(tmp_path / "other", "max_epochs=1"), resume=str(tmp_path / "nothing.ckpt"))
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        fit(_cfg(tmp_path / "fresh", "max_epochs=1"), resume=True)
    # --resume with another model: a one-line error naming the field, the checkpoint untouched
    with pytest.raises(ValueError, match="resume.*model_args"):
        fit(_cfg(tmp_path / "run", "max_epochs=2", "model_args.hidden=8"), resume=True)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes() == before
    # eval --batch-size 0 is an error, not the config's batch size
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(tmp_path / "run" / "checkpoints" / "last.ckpt", "test", batch_size=0)
    # an n-body checkpoint is not a potential: the ASE calculator refuses it
    from equiscale.train.ase_calculator import EquiscaleCalculator

    with pytest.raises(ValueError, match="nbody.*potential energy"):
        EquiscaleCalculator.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")


def test_init_from_starts_from_the_weights_and_rejects_a_mismatch(tmp_path):
    from equiscale.train.lit_module import TaskModule
    from equiscale.train.trainer import init_weights

    first = fit(_cfg(tmp_path / "a", "max_epochs=1"))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    module = TaskModule(_cfg(tmp_path / "b").to_dict())
    init_weights(module, ckpt)
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    for name, value in module.state_dict().items():
        assert torch.equal(value, saved[name]), name
    # a run started from the weights: its untrained epoch-0 validation is the first run's end
    second = fit(_cfg(tmp_path / "b", "max_epochs=1", "lr=1e-12", f"init_from={ckpt}"))
    assert second["config"]["init_from"] == str(ckpt)
    assert second["test"]["mse"] == pytest.approx(first["test"]["mse"], rel=1e-4)
    with pytest.raises(ValueError, match="init_from.*model_args"):
        fit(_cfg(tmp_path / "c", "max_epochs=1", "model_args.hidden=8", f"init_from={ckpt}"))
    with pytest.raises(ValueError, match="init_from.*'mlp'"):
        fit(_cfg(tmp_path / "d", "max_epochs=1", "model=mlp", "model_args={}", f"init_from={ckpt}"))
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        fit(_cfg(tmp_path / "e", "max_epochs=1", f"init_from={tmp_path / 'nothing.ckpt'}"))
    with pytest.raises(ValueError, match="init_from"):
        _cfg(tmp_path / "f", "init_from=3")


def test_corrupt_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.ckpt"):
        load_checkpoint(bad)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "missing.ckpt" in err and "Traceback" not in err
    assert (
        main(
            [
                "train",
                "--set",
                "model_args.hidden=-3",
                "--out",
                str(tmp_path / "r"),
                "--set",
                "data_args.n_train=10",
                "--set",
                "data_args.n_val=10",
                "--set",
                "data_args.n_test=10",
            ]
        )
        == 2
    )
    assert main(["train", "--set", "nonsense=1"]) == 2
    assert "nonsense" in capsys.readouterr().err


def _train_cmd(out: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "equiscale.cli", "train", "--out", str(out), "--no-progress"]
    for item in [*TINY, "max_epochs=8", "scheduler=cosine", *extra]:
        args += ["--set", item]
    return args


def _final_state(out: Path) -> tuple[dict, dict, dict]:
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    results = json.loads((out / "results.json").read_text())
    return ckpt["state_dict"], ckpt["optimizer_states"][0], results["test"]


def _assert_same_state(a, b):
    (wa, oa, ta), (wb, ob, tb) = a, b
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ at {k}"
    for k, sa in oa["state"].items():
        for name, va in sa.items():
            assert torch.equal(torch.as_tensor(va), torch.as_tensor(ob["state"][k][name])), (k, name)
    assert ta == tb


@pytest.mark.slow
def test_resume_after_sigkill_equals_unbroken_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    unbroken = tmp_path / "unbroken"
    subprocess.run(_train_cmd(unbroken), check=True, env=env, capture_output=True, timeout=600)

    broken = tmp_path / "broken"
    rng = random.Random(0)
    kills = 0
    proc = subprocess.Popen(_train_cmd(broken), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while kills < 2:
        # wait for a checkpoint, then kill at a random moment of the following epochs
        deadline = time.time() + 300
        while not (broken / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = subprocess.Popen(
            _train_cmd(
                broken,
            )
            + ["--resume"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    assert proc.wait(timeout=600) == 0
    assert kills >= 1
    _assert_same_state(_final_state(unbroken), _final_state(broken))
    # every start kept its own log (a start killed before its first flush has none); joined, they
    # cover every epoch with the unbroken run's values: nothing was deleted
    assert 2 <= len(list((broken / "logs").glob("version_*/metrics.csv"))) <= kills + 1
    epochs = [e for e, _ in read_metrics(broken / "logs")["val/mse"]]
    assert epochs == list(range(8))
    assert read_metrics(broken / "logs")["val/mse"] == read_metrics(unbroken / "logs")["val/mse"]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = _train_cmd(out, "max_epochs=2") + ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["test"]["mse"] > 0
    assert "world_size=2" in done.stderr or "Initializing distributed: GLOBAL_RANK: 1" in done.stderr


@pytest.mark.slow
def test_cpu_time_budget_stops_every_ddp_rank(tmp_path):
    """max_cpu_time under DDP: the ranks' CPU clocks differ, so they must decide together; a rank
    that stopped alone would leave the other waiting in the next all-reduce (the run would hang
    until the timeout). The run ends, validated and tested, long before max_epochs."""
    out = tmp_path / "ddp_budget"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = _train_cmd(out, "max_epochs=100000", "max_cpu_time=00:00:03") + [
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert 1 <= results["epochs_run"] < 100000 and results["fit_cpu_s"] >= 3.0
    assert results["test"]["mse"] > 0


def test_ema_weights_are_validated_saved_and_tested(tmp_path):
    """With ``ema_decay`` the checkpoint's state_dict is the exponential moving average (not the raw
    weights, which Lightning keeps beside it), and the reported test metrics are those of the
    averaged weights (``evaluate`` of the best checkpoint gives the same numbers)."""
    cfg = _cfg(tmp_path / "ema", "max_epochs=2", "ema_decay=0.9", "amsgrad=true")
    res = fit(cfg)
    ckpt = torch.load(res["best_checkpoint"], weights_only=True)
    raw, avg = ckpt["current_model_state"], ckpt["state_dict"]
    assert set(raw) == set(avg)
    assert max(float((raw[k] - avg[k]).abs().max()) for k in raw) > 1e-6
    again = evaluate(res["best_checkpoint"], progress=False)
    assert again["mse"] == pytest.approx(res["test"]["mse"], rel=1e-5)
    assert res["train_steps"] == 2 * 4 and res["fit_time_s"] > 0
    opt = ckpt["optimizer_states"][0]["param_groups"][0]
    assert opt["amsgrad"] is True
    with pytest.raises(ValueError, match="ema_decay"):
        _cfg(tmp_path / "bad", "ema_decay=1.0")


@pytest.mark.slow
def test_sigterm_exits_nonzero_and_keeps_the_checkpoint(tmp_path):
    """A scheduler's SIGTERM stops the run with exit code 143 (it once exited 0, read as success)
    and a checkpoint to resume from; the resumed run finishes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "term"
    proc = subprocess.Popen(
        _train_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and (out / "checkpoints" / "last.ckpt").is_file()
    done = subprocess.run(
        _train_cmd(out) + ["--resume"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert (out / "results.json").is_file()


def test_results_folder_is_not_overwritten(tmp_path):
    """A folder holding results.json (committed results have no checkpoints) is refused."""
    out = tmp_path / "committed"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="results.json"):
        fit(_cfg(out, "max_epochs=1"))
    assert (out / "results.json").read_text() == "{}"


def test_last_checkpoint_is_written_before_best(tmp_path, monkeypatch):
    """If the disk fills while best.ckpt is written, last.ckpt (what --resume reads) is already there."""
    from equiscale.train.checkpoint_io import AtomicCheckpointIO

    order = []
    original = AtomicCheckpointIO.save_checkpoint

    def recording(self, checkpoint, path, storage_options=None):
        order.append(Path(path).name)
        return original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording)
    fit(_cfg(tmp_path / "order", "max_epochs=2"))
    assert order[:2] == ["last.ckpt", "best.ckpt"], order


def test_disk_full_message(monkeypatch, capsys):
    import errno

    import equiscale.cli as cli

    def full(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/checkpoints/last.ckpt")

    monkeypatch.setattr(cli, "_run", full)
    assert cli.main(["train"]) == 28
    assert "no space left on device" in capsys.readouterr().err


def test_empty_checkpoint_has_a_reason(tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        evaluate(empty)
