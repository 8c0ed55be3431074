"""Runs that survive faults: kill a training process with SIGKILL at random moments, resume it each
time with ``equiscale train --resume``, and compare the final state with an unbroken run.

The same approach as the trainer's own test (``tests/test_trainer.py``), generalised to several
kills and to DDP (2 CPU processes, gloo): the whole process group is killed (launcher and
workers), so no rank survives a kill.

Identical means: every weight tensor equal (``torch.equal``), every optimizer state tensor equal,
the same epoch count and the same test metrics.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["TINY_NBODY", "kill_resume_cycles", "compare_runs"]

TINY_NBODY = [
    "data_args.n_train=200",
    "data_args.n_val=100",
    "data_args.n_test=100",
    "model_args.hidden=16",
    "model_args.layers=2",
    "batch_size=50",
    "eval_batch_size=100",
    "progress=false",
    "scheduler=cosine",
]


def _cmd(
    out: Path, epochs: int, ddp: bool, resume: bool, config: str | None = None, extra: tuple[str, ...] = ()
) -> list[str]:
    args = [sys.executable, "-m", "equiscale.cli", "train", "--out", str(out), "--no-progress"]
    if config is not None:
        args += ["--config", config]
    for item in [*(TINY_NBODY if config is None else []), f"max_epochs={epochs}"]:
        args += ["--set", item]
    if ddp:
        args += ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    args += list(extra)
    if resume:
        args.append("--resume")
    return args


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")  # a source checkout's src/
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src + (os.pathsep + path if path else "")}


def _final_state(out: Path) -> tuple[dict, dict, dict, int]:
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    results = json.loads((out / "results.json").read_text())
    return ckpt["state_dict"], ckpt["optimizer_states"][0], results["test"], results["epochs_run"]


def compare_runs(a: Path, b: Path) -> list[str]:
    """Differences between the final states of two run folders (empty list: identical)."""
    (wa, oa, ta, ea), (wb, ob, tb, eb) = _final_state(a), _final_state(b)
    diffs = []
    if wa.keys() != wb.keys():
        diffs.append(f"weight names differ: {sorted(set(wa) ^ set(wb))}")
    diffs += [f"weights differ at {k}" for k in wa if k in wb and not torch.equal(wa[k], wb[k])]
    for k, sa in oa["state"].items():
        for name, va in sa.items():
            vb = ob["state"].get(k, {}).get(name)
            if vb is None or not torch.equal(torch.as_tensor(va), torch.as_tensor(vb)):
                diffs.append(f"optimizer state differs at {k}/{name}")
    if ta != tb:
        diffs.append(f"test metrics differ: {ta} vs {tb}")
    if ea != eb:
        diffs.append(f"epochs differ: {ea} vs {eb}")
    return diffs


def _start(cmd: list[str], log) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill_resume_cycles(
    folder: str | os.PathLike,
    *,
    kills: int = 3,
    epochs: int = 24,
    ddp: bool = False,
    seed: int = 0,
    timeout: float = 600.0,
    config: str | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run an unbroken tiny n-body training (or ``config``, with ``extra`` command-line options
    such as ``--context-parallel 2``) and a broken one that is SIGKILLed ``kills`` times at
    random moments after its first checkpoint and resumed each time; compare the final states.

    Returns ``{"kills": k (done), "identical": bool, "differences": [...], "ddp": ddp,
    "wall_s": ..., "kill_times_s": [...]}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    unbroken, broken = folder / "unbroken", folder / "broken"
    with open(folder / "unbroken.log", "w") as log:
        done = subprocess.run(
            _cmd(unbroken, epochs, ddp, False, config, extra),
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the unbroken run failed (exit {done.returncode}); see {folder / 'unbroken.log'}")
    rng = random.Random(seed)
    kill_times = []
    log = open(folder / "broken.log", "w")  # noqa: SIM115 - shared by the successive processes
    try:
        proc = _start(_cmd(broken, epochs, ddp, False, config, extra), log)
        started = time.time()
        while len(kill_times) < kills:
            # wait for a checkpoint newer than the last kill (training has made progress), then
            # kill at a random moment of the following epoch(s)
            deadline = time.time() + timeout
            ckpt = broken / "checkpoints" / "last.ckpt"
            while (
                (not ckpt.exists() or ckpt.stat().st_mtime < started)
                and time.time() < deadline
                and proc.poll() is None
            ):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.02, 0.3))
            if proc.poll() is not None:
                break  # finished before the kill: fewer kills than asked
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kill_times.append(round(time.time() - started, 2))
            proc = _start(_cmd(broken, epochs, ddp, True, config, extra), log)
            started = time.time()
        code = proc.wait(timeout=timeout)
    finally:
        log.close()
    if code != 0:
        raise RuntimeError(f"the resumed run failed (exit {code}); see {folder / 'broken.log'}")
    diffs = compare_runs(unbroken, broken)
    return {
        "kills": len(kill_times),
        "identical": not diffs,
        "differences": diffs[:10],
        "ddp": ddp,
        "epochs": epochs,
        "kill_times_s": kill_times,
        "wall_s": round(time.time() - t0, 1),
    }
