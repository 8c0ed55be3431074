"""``equiscale bench mlip``: one table of energy/force models on one data set, side by side.

Reads the ``results.json`` of finished runs (our trainer's, ``equiscale train``, and MACE's,
``equiscale bench mace``), checks that they used the same data file and split, and writes a JSON
record and a markdown table: model, parameters, epochs, training wall-clock, time per optimiser
step (training wall-clock / steps, validation included), test force MAE/RMSE and energy MAE.
Each row keeps the command and commit that produced it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="results.json files of finished runs")
    parser.add_argument("--title", default="", help="heading of the markdown table")
    parser.add_argument(
        "--out",
        default="results/mlip/table.json",
        help="JSON record; the markdown table is written beside it (.md)",
    )


def _split_of(res: dict[str, Any]) -> tuple:
    if res.get("model") == "mace":
        s = res["split"]
        return (Path(res["data"]).name, s["n_train"], s["n_val"], s["n_test"], s["seed"])
    d = res["config"]["data_args"]
    return (Path(d["path"]).name, d["n_train"], d["n_val"], d["n_test"], d.get("seed", 0))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from equiscale.bench.common import write_record
    from equiscale.bench.mlip import markdown_table, run_row
    from equiscale.provenance import atomic_write_bytes

    splits = {}
    for path in args.runs:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--runs: {path} not found")
        splits[path] = _split_of(json.loads(Path(path).read_text()))
    if len(set(splits.values())) != 1:
        raise ValueError(f"--runs use different data or splits: {splits}")
    rows = [run_row(p) for p in args.runs]  # in the order given
    out = Path(args.out)
    table = markdown_table(rows)
    data, n_train, n_val, n_test, seed = next(iter(splits.values()))
    text = (
        f"# {args.title or data}\n\n{data}: {n_train}/{n_val}/{n_test} train/val/test frames "
        f"(seed {seed}), test-set errors.\n\n{table}\nCommands:\n\n"
        + "".join(f"- {r['model']}: `{r['command']}` (commit {r['git_commit']})\n" for r in rows)
    )
    atomic_write_bytes(out.with_suffix(".md"), text.encode())
    return write_record(out, {"benchmark": "mlip", "data": data, "rows": rows})
