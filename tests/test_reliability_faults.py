"""Runs that survive faults, under DDP: a 2-process CPU (gloo) training is SIGKILLed (the whole
process group) at a random moment after a fresh checkpoint and resumed; its final weights,
optimizer state, epochs and test metrics equal an unbroken DDP run's. (The single-process case
with several kills: tests/test_trainer.py and ``equiscale bench reliability``.)"""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")  # equiscale train: the train extra

import shutil

import torch

from reliability_catalogue.faults import compare_runs, kill_resume_cycles


@pytest.mark.slow
def test_ddp_run_killed_and_resumed_equals_unbroken_run(tmp_path):
    result = kill_resume_cycles(tmp_path, kills=1, ddp=True, epochs=6, seed=1)
    assert result["kills"] == 1, result
    assert result["identical"], result["differences"]
    # the comparison is not vacuous: a one-ulp change of one weight is reported
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "broken", tampered)
    ckpt_path = tampered / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    w = ckpt["state_dict"][name]
    ckpt["state_dict"][name] = torch.nextafter(w, w + 1)
    torch.save(ckpt, ckpt_path)
    assert any(name in d for d in compare_runs(tmp_path / "unbroken", tampered))
