"""``equiscale bench symmetry``: ways to give a plain GNN the symmetries of n-body, side by side.

Trains, one run after the other through the trainer (``equiscale.train.fit``), on the charged
n-body task (EGNN protocol, 3000 training trajectories) and on its symmetry-broken variant (a
constant external field in the simulation, ``data_args.field``):

- ``gnn``: the plain GNN (no symmetry but permutations);
- ``gnn_soft``: the same GNN trained with the soft-equivariance penalty (Kim et al. 2023) on
  rotations, reflections, translations and permutations;
- ``gnn_soft_tp``: the penalty on translations and permutations only (the symmetries the external
  field keeps: what a user who knows which symmetries hold would choose);
- ``gnn_canon``: the GNN on PCA-canonicalised inputs (one frame);
- ``gnn_fa8``: frame averaging over the 8 PCA frames;
- ``gnn_fa1``: frame averaging with one frame sampled per sample in training (all 8 at inference);
- ``egnn``: EGNN (equivariant by construction).

Each variant is a config file in ``configs/`` plus the settings shared by all (epochs, cosine
schedule, gradient clipping, seed). Per run: test MSE, the relative equivariance error on the
test set per symmetry (from the run's ``results.json``), training cost (wall time and ms per
optimiser step, validation included) and inference cost (median ms per 1000 test systems, forward
only, the best checkpoint). Writes ``table.json`` (with command, commit, device, versions, wall
time), ``table.md`` and ``symmetry_nbody.png`` in ``--out``; the runs go to ``--out/runs/``.
A run whose ``results.json`` exists is reused, so a stopped comparison continues where it was.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "VARIANTS", "markdown_table"]

#: variant -> (config file, overrides, label)
VARIANTS: dict[str, tuple[str, list[str], str]] = {
    "gnn": ("configs/gnn_nbody.yaml", [], "GNN"),
    "gnn_soft": ("configs/soft_gnn_nbody.yaml", [], "GNN + soft equivariance"),
    "gnn_soft_tp": (
        "configs/soft_gnn_nbody.yaml",
        ["soft_equivariance={translation: 0.1, permutation: 0.1, schedule: auto, warmup_steps: 300}"],
        "GNN + soft (translation, permutation)",
    ),
    "gnn_canon": ("configs/canon_gnn_nbody.yaml", [], "GNN canonicalised (PCA)"),
    "gnn_fa8": ("configs/fa_nbody.yaml", ["model_args.frames=all"], "GNN + FA, 8 frames"),
    "gnn_fa1": ("configs/fa_nbody.yaml", ["model_args.frames=sampled"], "GNN + FA, 1 sampled frame"),
    "egnn": ("configs/egnn_nbody.yaml", [], "EGNN"),
}
DATASETS = ("standard", "broken")
SYMS = ("rotation", "reflection", "translation", "permutation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/symmetry_nbody", help="output folder")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"any of: {' '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        choices=list(DATASETS),
        metavar="DATA",
        help="standard and/or broken (external field)",
    )
    parser.add_argument(
        "--field",
        nargs=3,
        type=float,
        default=[0.0, 0.0, 0.2],
        metavar=("EX", "EY", "EZ"),
        help="external field of the broken data",
    )
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run")
    parser.add_argument("--max-time", default="00:10:00", help="wall-clock cap per run, HH:MM:SS")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every run (repeatable)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the inference timing")


COMMON = [
    "scheduler=cosine",
    "grad_clip=1.0",
    "lr=5.0e-4",
    "batch_size=100",
    "eval_batch_size=2000",
    "seed=1",
    "progress=false",
    "data_args.n_train=3000",
]


def _config(variant: str, dataset: str, args: argparse.Namespace, out: Path):
    from equiscale.train import load_config

    path, extra, _ = VARIANTS[variant]
    sets = [
        *COMMON,
        *extra,
        *args.overrides,
        f"max_epochs={args.epochs}",
        f"max_time={args.max_time}",
        f"out_dir={out.as_posix()}",
    ]
    if dataset == "broken":
        sets.append("data_args.field=[" + ", ".join(repr(float(e)) for e in args.field) + "]")
    return load_config(path, sets), sets


def _inference_ms(run_dir: Path, repeats: int) -> float:
    """Median ms per 1000 test systems, forward only, the run's best checkpoint."""
    import torch

    from equiscale.bench.common import time_fn
    from equiscale.train import load_checkpoint
    from equiscale.train.trainer import build_task

    res = json.loads((run_dir / "results.json").read_text())
    module, cfg = load_checkpoint(res["best_checkpoint"])
    task = build_task(cfg)
    batch = task.collate([task.test[i] for i in range(len(task.test))])
    model = module.model.eval()
    with torch.no_grad():
        timing = time_fn(lambda: model(batch), warmup=1, repeats=repeats)
    return 1000.0 * timing["median_ms"] / len(task.test)


def _row(variant: str, dataset: str, run_dir: Path, inference_ms: float) -> dict[str, Any]:
    res = json.loads((run_dir / "results.json").read_text())
    steps = res.get("train_steps") or 0
    return {
        "variant": variant,
        "label": VARIANTS[variant][2],
        "data": dataset,
        "model": res["model"],
        "run": run_dir.as_posix(),
        "test_mse": res["test"]["mse"],
        "equivariance": res.get("equivariance", {}),
        "n_parameters": res["n_parameters"],
        "epochs": res["epochs_run"],
        "fit_time_s": res["fit_time_s"],
        "run_wall_time_s": res.get("wall_time_s"),  # data, training, test and equivariance
        "ms_per_step": round(1000 * res["fit_time_s"] / steps, 2) if steps else None,
        "inference_ms_per_1000": round(inference_ms, 2),
        "field": res["config"]["data_args"].get("field"),
        "command": res.get("command"),
        "git_commit": res.get("git_commit"),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a markdown table, one per variant and data set."""
    head = (
        "| data | variant | test MSE | rel. equiv. error: rotation | reflection | translation | "
        "permutation | parameters | epochs | training (s) | ms / step | inference (ms / 1000) "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        eq = r["equivariance"]
        errs = " | ".join(f"{eq[s]:.1e}" if s in eq else "-" for s in SYMS)
        lines.append(
            f"| {r['data']} | {r['label']} | {r['test_mse']:.4f} | {errs} | "
            f"{r['n_parameters']:,} | {r['epochs']} | {r['fit_time_s']:.1f} | "
            f"{r['ms_per_step']} | {r['inference_ms_per_1000']:.1f} |\n"
        )
    return head + "".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test MSE, rotation equivariance error and training time per variant, both data sets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equiscale.provenance import save_figure

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    by = {(r["variant"], r["data"]): r for r in rows}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / max(len(datasets), 1)
    panels = [
        ("test MSE", lambda r: r["test_mse"], False),
        (
            "relative equivariance error, rotation",
            lambda r: max(r["equivariance"].get("rotation", float("nan")), 1e-17),
            True,
        ),
        ("training wall time (s, 1 thread)", lambda r: r["fit_time_s"], False),
    ]
    for ax, (title, get, log) in zip(axes, panels):
        for k, data in enumerate(datasets):
            xs = [i + (k - (len(datasets) - 1) / 2) * width for i in range(len(variants))]
            ys = [get(by[(v, data)]) if (v, data) in by else float("nan") for v in variants]
            ax.bar(xs, ys, width=width, label=data)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels([VARIANTS[v][2] for v in variants], rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
    axes[2].legend(title="n-body data", fontsize=8)  # the right of that panel is free
    fig.suptitle("charged n-body: symmetry by architecture, canonicalisation, averaging or penalty")
    fig.tight_layout()
    return save_figure(fig, path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from equiscale.bench.common import check_bench_args, write_record
    from equiscale.provenance import atomic_write_bytes
    from equiscale.train import fit

    check_bench_args(args, at_least_one=("epochs", "threads", "repeats"))
    started = time.time()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = []
    for dataset in args.datasets:
        for variant in args.variants:
            run_dir = out / "runs" / f"{dataset}_{variant}"
            cfg, sets = _config(variant, dataset, args, run_dir)
            reused = (run_dir / "results.json").is_file()
            if not reused:
                print(f"training {variant} on {dataset} n-body -> {run_dir}", flush=True)
                fit(cfg)
            row = _row(variant, dataset, run_dir, _inference_ms(run_dir, args.repeats))
            row["reused"] = reused  # trained by an earlier invocation (its own command and commit)
            row["config"] = {"file": VARIANTS[variant][0], "overrides": sets[:-1]}
            rows.append(row)
            print(
                f"  {dataset:>8s} {variant:<10s} test MSE {row['test_mse']:.4f}  equivariance "
                + " ".join(f"{s[:3]} {row['equivariance'].get(s, float('nan')):.1e}" for s in SYMS),
                flush=True,
            )
    table = markdown_table(rows)
    field = list(args.field)
    text = (
        f"# Symmetry tools on charged n-body\n\nEGNN protocol (3000/2000/2000 trajectories, frame "
        f"30 -> 40); *broken*: the same initial states simulated with a constant external field "
        f"E = {field} (force q E). {args.epochs} epochs per run, 1 torch thread, Adam lr 5e-4 with a "
        "cosine schedule, gradient clip 1, batch 100, seed 1; the best-validation checkpoint is "
        "tested. Relative equivariance error: mean ||f(gx) - g f(x)|| / (||f(gx)|| + ||g f(x)||) "
        "on the test set (8 group elements per symmetry, float64 copy of the model).\n\n"
        f"{table}\nCommand: `{_command()}`\n\nRuns (config file + shared overrides, commit):\n\n"
        + "".join(
            f"- {r['data']} {r['variant']}: `{r['config']['file']}` (commit {r['git_commit']})\n"
            for r in rows
        )
    )
    atomic_write_bytes(out / "table.md", text.encode())
    plot(rows, out / "symmetry_nbody.png")
    return write_record(
        out / "table.json",
        {
            "benchmark": "symmetry_nbody",
            "field": field,
            "epochs": args.epochs,
            "threads": args.threads,
            # wall_time_s (added by write_record) is this invocation's; the runs' own add up to:
            "runs_wall_time_s": round(sum(r["run_wall_time_s"] or 0.0 for r in rows), 1),
            "rows": rows,
        },
        started=started,
    )


def _command() -> str:
    from equiscale.provenance import command_line

    return command_line()
