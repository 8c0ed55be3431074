"""Plots of training runs (matplotlib, Agg back end)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["plot_learning_curves", "read_metrics"]


def read_metrics(csv_path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning CSV log -> ``{column: [(epoch, value), ...]}`` (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if epoch in (None, ""):
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                series.setdefault(key, []).append((int(float(epoch)), float(value)))
    return series


def plot_learning_curves(csv_path: str | Path, out_png: str | Path, metric: str = "mse") -> str:
    """Training loss and validation ``metric`` per epoch on log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(csv_path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train/loss_epoch", "train loss"), ("train/loss", "train loss"),
                       (f"val/{metric}", f"validation {metric}")):
        if key in series and not (key == "train/loss" and "train/loss_epoch" in series):
            pts = [(e, v) for e, v in series[key] if v > 0 and math.isfinite(v)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return str(out_png)
