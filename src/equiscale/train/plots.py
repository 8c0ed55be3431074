"""Plots of training runs (matplotlib, Agg back end)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from equiscale.provenance import save_figure

__all__ = ["plot_learning_curves", "plot_nve", "read_metrics"]


def read_metrics(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning CSV logs -> ``{column: [(epoch, value), ...]}`` sorted by epoch.

    ``log_dir`` is a run's ``logs/`` folder (one ``version_k/metrics.csv`` per start or resume) or
    a single CSV file. Where a resumed run repeated epochs after a kill, the later value wins.
    """
    log_dir = Path(log_dir)
    if log_dir.is_file():
        files = [log_dir]
    else:
        files = sorted(log_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    merged: dict[str, dict[int, float]] = {}
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                epoch = row.get("epoch")
                if epoch in (None, ""):
                    continue
                for key, value in row.items():
                    if key in ("epoch", "step") or value in (None, ""):
                        continue
                    merged.setdefault(key, {})[int(float(epoch))] = float(value)
    return {k: sorted(v.items()) for k, v in merged.items()}


def plot_learning_curves(log_dir: str | Path, out_png: str | Path, metric: str = "mse") -> str:
    """Training loss and validation ``metric`` per epoch on log axes (``log_dir``: see read_metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(log_dir)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("train/loss_epoch", "train loss"),
        ("train/loss", "train loss"),
        (f"val/{metric}", f"validation {metric}"),
    ):
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
    save_figure(fig, out_png)
    return str(out_png)


def plot_nve(runs: dict[str, dict], out_png: str | Path, title: str = "") -> str:
    """Total energy minus its start (meV) against time (ps), one line per NVE run (``runs``: name ->
    a summary of :func:`equiscale.train.nve.energy_summary` with ``timestep_fs``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, r in runs.items():
        t = [x / 1000.0 for x in r["time_fs"]]
        e0 = r["total_energy_eV"][0]
        ax.plot(
            t,
            [1e3 * (e - e0) for e in r["total_energy_eV"]],
            lw=0.8,
            label=f"{name} ({r['timestep_fs']:g} fs)",
        )
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("E_total - E_total(0) (meV)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png)
    return str(out_png)
