"""Absurd command-line values give a one-line error naming the option (exit code 2) and write
nothing; before, they gave tracebacks or, for `bench tp --lmax -1`, overwrote a record with an
empty one."""

from __future__ import annotations

import pytest
import torch

from equiscale.cli import main


@pytest.mark.parametrize("argv,match", [
    (["bench", "tp", "--batch", "0"], "--batch must be >= 1"),
    (["bench", "tp", "--channels", "-3"], "--channels must be >= 1"),
    (["bench", "tp", "--threads", "0"], "--threads must be >= 1"),
    (["bench", "tp", "--lmax", "-1"], "--lmax must be >= --lmin"),
    (["bench", "tp", "--device", "foo"], "not a device name"),
    (["bench", "conv", "--atoms", "0"], "--atoms must be >= 1"),
    (["bench", "conv", "--neighbors", "0", "8"], "--neighbors must list values >= 1"),
    (["bench", "context", "--tokens", "0"], "--tokens must list values >= 1"),
    (["train", "--task", "nbody", "--devices", "0"], "'devices' must be an int >= 1"),
    (["train", "--task", "nbody", "--accelerator", "tpu"], "'accelerator' must be"),
])
def test_absurd_values_are_one_line_errors(tmp_path, capsys, argv, match):
    out = tmp_path / "out.json"
    extra = ["--out", str(out)] if argv[0] == "bench" else ["--out", str(tmp_path / "run")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("equiscale: error:") and match in err and "\n" not in err
    assert not out.exists() and not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda(tmp_path, capsys):
    assert main(["bench", "tp", "--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert main(["train", "--task", "nbody", "--accelerator", "gpu", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["bench", "data"])
def test_help_of_the_groups(capsys, kind):
    assert main([kind, "--help"]) == 0
    assert f"equiscale {kind}" in capsys.readouterr().out
