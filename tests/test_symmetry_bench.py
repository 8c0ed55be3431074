"""``equiscale bench symmetry``: every variant's config is valid on both data sets, and the table
and plot are written from run rows (the runs themselves are the committed results)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

pytest.importorskip("lightning")  # equiscale.train: the train extra

from equiscale.bench import symmetry as bench


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


@pytest.mark.parametrize("dataset", bench.DATASETS)
def test_every_variant_builds_a_valid_config(dataset: str, tmp_path: Path) -> None:
    args = _args(epochs=3)
    for variant in bench.VARIANTS:
        cfg, _ = bench._config(variant, dataset, args, tmp_path / variant)
        assert cfg.max_epochs == 3 and cfg.scheduler == "cosine" and cfg.seed == 1
        assert cfg.data_args.get("field") == ([0.0, 0.0, 0.2] if dataset == "broken" else None)
        if variant.startswith("gnn_soft"):
            assert cfg.soft_equivariance and "translation" in cfg.soft_equivariance
        if variant == "gnn_soft_tp":
            assert "rotation" not in cfg.soft_equivariance
        if variant.startswith("gnn_fa"):
            assert cfg.model_args["frames"] == ("all" if variant == "gnn_fa8" else "sampled")


def test_table_and_plot(tmp_path: Path) -> None:
    rows = []
    for k, (variant, data) in enumerate([("gnn", "standard"), ("egnn", "broken")]):
        rows.append(
            {
                "variant": variant,
                "label": bench.VARIANTS[variant][2],
                "data": data,
                "test_mse": 0.01 * (k + 1),
                "n_parameters": 1000,
                "epochs": 30,
                "fit_time_s": 12.0,
                "ms_per_step": 3.0,
                "inference_ms_per_1000": 5.0,
                "equivariance": {
                    "rotation": 1e-2 / (k + 1),
                    "reflection": 1e-2,
                    "translation": 1e-3,
                    "permutation": 1e-17,
                },
            }
        )
    table = bench.markdown_table(rows)
    lines = [
        line for line in table.splitlines() if line.startswith("| standard") or line.startswith("| broken")
    ]
    assert len(lines) == 2 and "| 0.0100 | 1.0e-02 |" in lines[0] and "5.0e-03" in lines[1]
    path = bench.plot(rows, tmp_path / "plot.png")
    assert path.stat().st_size > 10_000


def test_bad_options() -> None:
    args = _args(epochs=0)
    with pytest.raises(ValueError, match="--epochs"):
        bench.run(args)
