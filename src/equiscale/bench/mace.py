"""``equiscale bench mace``: train MACE (the peer) on exactly the split of an ``md`` run, with its own
trainer, and score it with our metric code.

MACE (``mace-torch`` 0.3.16) pins e3nn 0.4.4 and equiscale needs e3nn >= 0.5.1, so MACE lives in its
own virtual environment (``make peers`` makes ``.venv-peers``). This command

1. writes the frames of ``md_task(--data, --n-train, --n-val, --n-test, --seed)`` as
   ``train/valid/test.xyz`` (:func:`equiscale.bench.mlip.write_splits`);
2. runs ``mace_run_train`` from the peers venv (one thread: ``OMP_NUM_THREADS``), MACE's defaults
   for everything not set here (weighted energy/forces loss 1 : 100 on per-atom energies, Adam
   lr 0.01, plateau schedule), E0s by least squares on the training frames (``average``), as in
   our ``md`` task;
3. predicts the test frames with MACE's ASE calculator (``tools/peers/mace_predict.py``) and writes
   ``results.json`` in the layout of our trainer's: ``test.forces_mae`` etc. by
   :func:`equiscale.bench.mlip.force_energy_errors`, ``n_parameters``, ``epochs_run``,
   ``train_steps``, ``fit_time_s`` (MACE's training loop, wall-clock from its log),
   ``mace_run_train_cpu_s`` (CPU time of the whole ``mace_run_train`` process: data loading,
   training, validation and its final evaluation on every split) and ``wall_time_s``.

``--task protein`` uses the contiguous time blocks of the ``protein`` task instead (``--gap``) and
also scores ``forces_long_mae``, the error along the long-range part of the force.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_arguments", "run", "mace_train_command"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=("md", "protein"),
        default="md",
        help="whose split to use: the md task's (random, --seed) or the protein task's "
        "(contiguous time blocks, --gap; also scores the long-range part of the force)",
    )
    parser.add_argument(
        "--data",
        default="data/md_CH3CH2OH_xtb.extxyz",
        help="extxyz with energies and forces (md) or an npz of `equiscale data protein` (protein)",
    )
    parser.add_argument("--gap", type=int, default=0, help="frames left out between time blocks (protein)")
    parser.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="MACE --default_dtype"
    )
    parser.add_argument("--n-train", type=int, default=1000, help="training frames (the md task's split)")
    parser.add_argument("--n-val", type=int, default=100, help="validation frames")
    parser.add_argument("--n-test", type=int, default=300, help="test frames")
    parser.add_argument("--seed", type=int, default=0, help="split seed (as the md task's) and MACE's seed")
    parser.add_argument("--epochs", type=int, default=30, help="MACE max_num_epochs (sets the budget)")
    parser.add_argument("--channels", type=int, default=32, help="MACE --num_channels")
    parser.add_argument("--max-L", type=int, default=1, help="MACE --max_L (largest degree of the messages)")
    parser.add_argument(
        "--correlation", type=int, default=3, help="MACE --correlation (order of the many-body product)"
    )
    parser.add_argument("--r-max", type=float, default=5.0, help="MACE --r_max: cutoff radius (A)")
    parser.add_argument(
        "--batch-size", type=int, default=10, help="MACE --batch_size (training frames per step)"
    )
    parser.add_argument(
        "--valid-batch-size",
        type=int,
        default=50,
        help="MACE --valid_batch_size (frames per evaluation batch; 2,603-atom frames need a few: "
        "50 of them took 22 GB)",
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP/torch threads for MACE")
    parser.add_argument(
        "--peers-python",
        default=".venv-peers/bin/python",
        help="python of the venv with mace-torch (make peers)",
    )
    parser.add_argument(
        "--out", default="results/mlip/mace_ethanol", help="run folder (must not hold a results.json yet)"
    )


def mace_train_command(args: argparse.Namespace, files: dict[str, str], work: Path) -> list[str]:
    """The ``mace_run_train`` command line (MACE 32x0e+32x1o, max_L 1, correlation 3, EMA 0.99,
    AMSGrad, float64, batch 10: the configuration of the MACE reference run in the design notes)."""
    exe = str(Path(args.peers_python).parent / "mace_run_train")
    return [
        exe,
        "--name",
        "mace",
        "--work_dir",
        str(work),
        "--seed",
        str(args.seed),
        "--train_file",
        files["train"],
        "--valid_file",
        files["valid"],
        "--test_file",
        files["test"],
        "--energy_key",
        "REF_energy",
        "--forces_key",
        "REF_forces",
        "--E0s",
        "average",
        "--model",
        "MACE",
        "--num_channels",
        str(args.channels),
        "--max_L",
        str(args.max_L),
        "--correlation",
        str(args.correlation),
        "--r_max",
        str(args.r_max),
        "--batch_size",
        str(args.batch_size),
        "--valid_batch_size",
        str(args.valid_batch_size),
        "--max_num_epochs",
        str(args.epochs),
        "--ema",
        "--ema_decay",
        "0.99",
        "--amsgrad",
        "--default_dtype",
        args.dtype,
        "--device",
        "cpu",
        "--eval_interval",
        "1",
    ]


def _log_times(log: Path) -> tuple[float, int]:
    """(seconds from 'Started training' to the last epoch line, epochs logged) from MACE's log."""
    stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) INFO: (.*)$")
    start = last = None
    epochs = 0
    for line in log.read_text().splitlines():
        m = stamp.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if m.group(2).startswith("Started training"):
            start = t
        elif m.group(2).startswith("Epoch ") and start is not None:
            last, epochs = t, epochs + 1
    if start is None or last is None:
        raise RuntimeError(f"MACE log {log} has no training epochs")
    return last - start, epochs


def run(args: argparse.Namespace) -> dict[str, Any]:
    from equiscale.bench.common import write_record
    from equiscale.bench.mlip import force_energy_errors, write_protein_splits, write_splits
    from equiscale.data.extxyz import read_extxyz
    from equiscale.train.tasks.molecules import split_indices

    started = time.time()
    for name in (
        "n_train",
        "n_val",
        "n_test",
        "epochs",
        "channels",
        "batch_size",
        "valid_batch_size",
        "threads",
    ):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    python = Path(args.peers_python)
    if not python.is_file():
        raise FileNotFoundError(
            f"--peers-python {python} not found: run `make peers` (mace-torch in its own venv)"
        )
    out = Path(args.out)
    if (out / "results.json").exists():
        raise FileExistsError(f"{out} already holds a result (results.json); choose another --out")
    if args.task == "protein":
        if args.gap < 0:
            raise ValueError(f"--gap must be >= 0, got {args.gap}")
        files, reference = write_protein_splits(
            args.data, str(out / "data"), args.n_train, args.n_val, args.n_test, args.gap
        )
    else:
        files = write_splits(args.data, str(out / "data"), args.n_train, args.n_val, args.n_test, args.seed)
    work = out / "mace"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = mace_train_command(args, files, work)
    log = out / "mace_train.log"
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    train_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"mace_run_train failed (exit {proc.returncode}); see {log}")
    mace_logs = sorted((work / "logs").glob("*.log"))
    fit_time, epochs = _log_times(mace_logs[-1])
    pred_path = out / "test_predictions.npz"
    tool = Path(__file__).resolve().parents[3] / "tools" / "peers" / "mace_predict.py"
    subprocess.run(
        [
            str(python),
            str(tool),
            str(work / "mace.model"),
            files["test"],
            str(pred_path),
            "--threads",
            str(args.threads),
        ],
        env=env,
        check=True,
    )
    pred = np.load(pred_path)
    if args.task == "protein":
        import torch

        from equiscale.train.tasks.protein import long_range_errors

        energy, forces = reference["energy"], reference["forces"]
        long = long_range_errors(
            *(
                torch.as_tensor(a, dtype=torch.float64)
                for a in (pred["forces"], forces, reference["forces_long"])
            )
        )
        split = {"n_train": args.n_train, "n_val": args.n_val, "n_test": args.n_test, "gap": args.gap}
    else:
        frames = read_extxyz(args.data)
        test_idx = split_indices(len(frames), args.n_train, args.n_val, args.n_test, args.seed)[2]
        energy = np.array([frames[int(k)].energy for k in test_idx])
        forces = np.concatenate([frames[int(k)].forces for k in test_idx])
        long = {}
        split = {"n_train": args.n_train, "n_val": args.n_val, "n_test": args.n_test, "seed": args.seed}
    steps_per_epoch = -(-args.n_train // args.batch_size)
    test = force_energy_errors(pred["energy"], pred["forces"], energy, forces)
    test.update({k: float(v) for k, v in long.items()})
    record = {
        "task": args.task,
        "model": "mace",
        "peer": "mace-torch 0.3.16 (mace_run_train)",
        "data": args.data,
        "split": split,
        "mace_command": " ".join(Path(c).name if c.startswith("/") else c for c in cmd),
        "epochs_run": epochs,
        "train_steps": epochs * steps_per_epoch,
        "fit_time_s": round(fit_time, 1),
        "mace_run_train_cpu_s": round(train_cpu, 1),
        "test": test,
        "n_parameters": int(pred["n_parameters"]),
        "md_seconds_per_call": float(pred["seconds_per_frame"]),
    }
    return write_record(out / "results.json", record, started=started)
