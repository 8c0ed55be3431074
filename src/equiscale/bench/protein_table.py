"""``equiscale bench protein-table``: the models of the all-atom protein tasks side by side.

Reads the ``results.json`` of finished runs on one protein data set: energy/force runs (task
``protein``: our trainer's, ``equiscale train``, and MACE's, ``equiscale bench mace --task
protein``) and dynamics runs (task ``protein_dynamics``). It checks that every run of a task used
the same data file and time-block split, and writes a JSON record and a markdown table (beside
it, ``.md``): per model the parameters, optimiser steps, training wall-clock, test force MAE and
RMSE, the error along the long-range part of the force (``forces_long_mae``, see
:mod:`equiscale.train.tasks.protein`), energy MAE, and the dynamics MSE; then the baselines the
tasks print (zero forces; exact short-range forces, which miss exactly the long-range part; copy
and constant-velocity frames). Rows keep the command and commit that produced them. A row may
name the model with ``LABEL=path/results.json`` (e.g. ``hybrid+coulomb=...``).

``--long`` takes ``protein`` runs trained on the long-range part alone (``data_args.target=long``)
and tables them apart: there ``forces_mae`` is the error on F^long itself and the zero-force
baseline is mean |F^long| per component. Runs of the two targets never share a table (the split
check compares the target too).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "markdown"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forces", nargs="*", default=[], help="results.json of protein (forces) runs, [LABEL=]PATH"
    )
    parser.add_argument(
        "--dynamics", nargs="*", default=[], help="results.json of protein_dynamics runs, [LABEL=]PATH"
    )
    parser.add_argument(
        "--long",
        nargs="*",
        default=[],
        help="results.json of protein runs with data_args.target=long, [LABEL=]PATH",
    )
    parser.add_argument("--title", default="", help="heading of the markdown table")
    parser.add_argument(
        "--out",
        default="results/protein/table_t4.json",
        help="JSON record; the markdown is written beside it",
    )


def _split_of(res: dict[str, Any]) -> tuple:
    if res.get("model") == "mace":
        s = res["split"]
        return (Path(res["data"]).name, s["n_train"], s["n_val"], s["n_test"], s["gap"], None, "total")
    d = res["config"]["data_args"]
    target = d.get("target", "total") if res.get("task") == "protein" else None
    return (
        Path(d["path"]).name,
        d["n_train"],
        d["n_val"],
        d["n_test"],
        d.get("gap", 0),
        d.get("horizon"),
        target,
    )


def _load(spec: str, key: str) -> tuple[str, dict[str, Any], str]:
    task = "protein_dynamics" if key == "dynamics" else "protein"
    label, _, path = spec.rpartition("=")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{key}: {path} not found")
    res = json.loads(Path(path).read_text())
    if res.get("task") != task:
        raise ValueError(f"--{key}: {path} is a run of task {res.get('task')!r}, expected {task!r}")
    if task == "protein":
        target = _split_of(res)[-1]
        want = "long" if key == "long" else "total"
        if target != want:
            raise ValueError(
                f"--{key}: {path} was trained on target {target!r}; --forces takes target 'total', "
                "--long target 'long'"
            )
    return label or res["model"], res, path


def _row(label: str, res: dict[str, Any], path: str) -> dict[str, Any]:
    steps = res.get("train_steps") or 0
    cpu = res.get("fit_cpu_s") or res.get("mace_run_train_cpu_s")  # MACE's: the whole process
    test = res["test"]
    keys = ("forces_mae", "forces_rmse", "forces_long_mae", "energy_mae", "mse")
    return {
        "model": label,
        "run": Path(path).parent.as_posix(),
        "n_parameters": res.get("n_parameters"),
        "epochs": res.get("epochs_run"),
        "train_steps": steps or None,
        "fit_time_min": round(res["fit_time_s"] / 60, 1) if res.get("fit_time_s") else None,
        "fit_cpu_min": round(cpu / 60, 1) if cpu else None,
        "cpu_per_step_s": round(cpu / steps, 2) if steps and cpu else None,
        **{k: float(test[k]) for k in keys if k in test},
        "command": res.get("command") or res.get("mace_command"),
        "git_commit": res.get("git_commit"),
    }


def _fmt(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{scale * value:.{digits}f}"


def markdown(record: dict[str, Any], title: str) -> str:
    """The record as markdown: forces table, dynamics table, baselines, commands."""
    out = [f"# {title or 'protein models'}\n"]
    forces, dynamics, long = record["forces"], record["dynamics"], record.get("long") or {}
    sections = (
        (forces, "Energies and forces", "test-set errors"),
        (long, "The long-range part alone (target=long)", "test-set errors against E^long, F^long"),
    )
    for part, heading, what in sections:
        if not part:
            continue
        data, n_train, n_val, n_test, gap = part["split"][:5]
        out.append(
            f"\n## {heading}\n\n{data}: {n_train}/{n_val}/{n_test} train/val/test frames in "
            f"contiguous time blocks (gap {gap}); {what}.\n\n"
            "| model | parameters | epochs | steps | training CPU (min) | CPU s per step | "
            "force MAE (meV/A) | force RMSE (meV/A) | long-range force error (meV/A) | energy MAE (meV) |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
        )
        for r in part["rows"]:
            out.append(
                f"| {r['model']} | {r['n_parameters']:,} | {r['epochs']} | {r['train_steps']} | "
                f"{r['fit_cpu_min']} | {r['cpu_per_step_s']} | {_fmt(r.get('forces_mae'), 1e3)} | "
                f"{_fmt(r.get('forces_rmse'), 1e3)} | {_fmt(r.get('forces_long_mae'), 1e3)} | "
                f"{_fmt(r.get('energy_mae'), 1e3)} |\n"
            )
        if part["baselines"]:
            out.append("\nBaselines (test set, meV/A or meV):\n\n")
            out.extend(f"- {k}: {1e3 * v:.1f}\n" for k, v in part["baselines"].items())
    if dynamics:
        data, n_train, n_val, n_test, gap, horizon = dynamics["split"][:6]
        out.append(
            f"\n## Dynamics\n\n{data}: positions {horizon} frame(s) ahead; {n_train}/{n_val}/{n_test} "
            f"frames in contiguous time blocks (gap {gap}); test MSE per atom and coordinate.\n\n"
            "| model | parameters | epochs | steps | training CPU (min) | CPU s per step | MSE (A^2) |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        for r in dynamics["rows"]:
            out.append(
                f"| {r['model']} | {r['n_parameters']:,} | {r['epochs']} | {r['train_steps']} | "
                f"{r['fit_cpu_min']} | {r['cpu_per_step_s']} | {_fmt(r.get('mse'), 1.0, 4)} |\n"
            )
        out.append("\nBaselines (test MSE, A^2):\n\n")
        out.extend(f"- {k}: {v:.4f}\n" for k, v in dynamics["baselines"].items())
    out.append("\nCommands:\n\n")
    for part in (forces, long, dynamics):
        for r in part.get("rows", []) if part else []:
            out.append(f"- {r['model']}: `{r['command']}` (commit {r['git_commit']})\n")
    return "".join(out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from equiscale.bench.common import write_record
    from equiscale.provenance import atomic_write_bytes

    long_runs = getattr(args, "long", [])
    if not args.forces and not args.dynamics and not long_runs:
        raise ValueError("give at least one run with --forces, --long or --dynamics")
    record: dict[str, Any] = {"benchmark": "protein-table", "forces": {}, "long": {}, "dynamics": {}}
    for key, specs in (("forces", args.forces), ("long", long_runs), ("dynamics", args.dynamics)):
        if not specs:
            continue
        runs = [_load(s, key) for s in specs]
        splits = {path: _split_of(res) for _, res, path in runs}
        if len(set(splits.values())) != 1:
            raise ValueError(f"--{key} runs use different data or splits: {splits}")
        baselines: dict[str, float] = {}  # every run's, merged: the same test split gives the same values
        for _, res, path in runs:
            for name, value in (res.get("baselines") or {}).items():
                if name in baselines and abs(baselines[name] - value) > 1e-6 * max(1.0, abs(value)):
                    raise ValueError(
                        f"--{key}: baseline {name!r} is {value} in {path} but {baselines[name]} in "
                        "an earlier run: not the same test set"
                    )
                baselines.setdefault(name, value)
        record[key] = {
            "split": list(next(iter(splits.values()))),
            "rows": [_row(*r) for r in runs],  # in the order given
            "baselines": baselines,
        }
    out = Path(args.out)
    atomic_write_bytes(out.with_suffix(".md"), markdown(record, args.title).encode())
    return write_record(out, record)
