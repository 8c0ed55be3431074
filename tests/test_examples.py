"""The scripts under examples/ run, at small sizes, from a folder outside the repository (as a
user would run a copy), and print what their docstrings promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def test_every_example_is_tested():
    tested = {"gaunt_in_e3nn_model.py", "train_on_extxyz.py", "md_with_trained_model.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_gaunt_in_e3nn_model(tmp_path):
    out = _run("gaunt_in_e3nn_model.py", "--lmax", "1", "--channels", "4", "--nodes", "5", cwd=tmp_path)
    error = float(re.search(r"equivariance error (\S+)", out).group(1))
    assert error < 1e-9, out
    assert "4x0e+4x1o" in out


@pytest.mark.slow
def test_train_on_extxyz_then_md(tmp_path):
    pytest.importorskip("lightning")
    pytest.importorskip("ase")
    run = tmp_path / "run"
    out = _run(
        "train_on_extxyz.py",
        "--out",
        str(run),
        "--epochs",
        "1",
        "--frames",
        "12",
        "--channels",
        "4",
        cwd=tmp_path,
    )
    assert re.search(r"12 frames from .*: test energy MAE \d", out), out
    ckpt = run / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()
    md = _run(
        "md_with_trained_model.py",
        str(ckpt),
        "--structure",
        str(run / "frames.extxyz"),
        "--steps",
        "5",
        cwd=tmp_path,
    )
    drift = float(re.search(r"drift (\S+) eV", md).group(1))
    assert drift < 1e-2, md  # NVE with the model's own conservative forces
