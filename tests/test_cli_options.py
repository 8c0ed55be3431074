"""Absurd command-line values give a one-line error naming the option (exit code 2) and write
nothing; before, they gave tracebacks or, for `bench tp --lmax -1`, overwrote a record with an
empty one. Every option of `bench NAME` and `data NAME` has a help line that shows its default, and
the results printed by `train` say when max_time stopped the run before max_epochs."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")  # equiscale train/bench/data: the train extra
import torch

from equiscale import registry
from equiscale.cli import _sub_parser, format_results, main


@pytest.mark.parametrize(
    "argv,match",
    [
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
    ],
)
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


@pytest.mark.parametrize(
    "kind,name",
    [("bench", n) for n in sorted(registry.BENCHES)] + [("data", n) for n in sorted(registry.DATASETS)],
)
def test_every_option_has_help(kind, name):
    parser, _ = _sub_parser(kind, name)
    missing = [
        a.option_strings or a.dest
        for a in parser._actions  # noqa: SLF001
        if "-h" not in a.option_strings and not (a.help or "").strip()
    ]
    assert not missing, f"equiscale {kind} {name}: options without help: {missing}"


def test_option_help_shows_defaults():
    text = _sub_parser("bench", "tp")[0].format_help()
    assert "(default:" in text and "(default: 12)" in " ".join(text.split())


_RESULTS = {
    "task": "nbody",
    "model": "egnn",
    "n_parameters": 1000,
    "test": {"mse": 0.02},
    "config": {"max_epochs": 150, "max_time": "00:05:00"},
}


def test_results_say_when_max_time_stopped_the_run():
    text = format_results({**_RESULTS, "epochs_run": 12})
    assert "stopped early by max_time (00:05:00) after 12 of 150 epochs" in text
    assert text.index("stopped early") < text.index("test mse")  # the warning comes before the metrics


def test_results_of_a_complete_run_have_no_warning():
    assert "stopped early" not in format_results({**_RESULTS, "epochs_run": 150})
    assert "stopped early" not in format_results({**_RESULTS, "epochs_run": 150, "config": {}})


def test_version_is_the_package_version(capsys):
    import importlib.metadata

    import equiscale
    from equiscale.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"equiscale {equiscale.__version__}"
    assert importlib.metadata.version("equiscale") == equiscale.__version__
