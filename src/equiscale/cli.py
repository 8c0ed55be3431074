"""Command line: ``equiscale train | eval | bench NAME | data NAME``.

The CLI only parses and calls library functions (``equiscale.train.fit``, ``evaluate``, the
``run(args)`` of bench and data modules); errors are one line on stderr and exit code 2
(set ``EQUISCALE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any

from equiscale import registry

__all__ = ["main", "build_parser", "format_results"]

_EPILOG_TRAIN = """examples:
  equiscale train --config configs/egnn_nbody.yaml
  equiscale train --config configs/egnn_nbody.yaml --set max_epochs=20 --out runs/quick
  equiscale train --config configs/egnn_nbody.yaml --out runs/egnn --resume   # continue a killed run
  equiscale train --task nbody --model egnn --set model_args.hidden=32 --devices 2 --strategy ddp
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="equiscale",
        description="SE(3)/E(3)-equivariant learning at scale: train, evaluate, benchmark, make data.",
    )
    from equiscale import __version__

    p.add_argument("--version", action="version", version=f"equiscale {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="train a model on a task (Lightning; checkpoints every epoch)",
        description="Train a registered model on a registered task. Settings come from --config "
        "(YAML), then --set overrides, then the explicit flags below. The run folder gets "
        "checkpoints/ (last.ckpt every epoch, best.ckpt by validation), "
        "logs/version_k/metrics.csv (one per start or resume), "
        "results.json and plots; the test split is evaluated with the best checkpoint.",
        epilog=_EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--config", help="YAML file with TrainConfig fields (see equiscale.train.TrainConfig)")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field; dotted keys reach into data_args/model_args, "
        "e.g. --set model_args.hidden=32 (repeatable)",
    )
    t.add_argument("--task", help=f"task name: {', '.join(sorted(registry.TASKS))}")
    t.add_argument("--model", help=f"model name: {', '.join(sorted(registry.MODELS))}")
    t.add_argument("--epochs", type=int, dest="max_epochs", help="number of epochs (max_epochs)")
    t.add_argument("--max-time", dest="max_time", help="wall-clock budget HH:MM:SS; stops cleanly")
    t.add_argument(
        "--max-cpu-time", dest="max_cpu_time", help="CPU-time budget HH:MM:SS of the process; stops cleanly"
    )
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--batch-size", type=int, dest="batch_size", help="training batch size")
    t.add_argument("--seed", type=int, help="random seed (weights, data order)")
    t.add_argument("--out", dest="out_dir", help="run folder (default runs/default)")
    t.add_argument("--accelerator", help="cpu, gpu or auto")
    t.add_argument("--devices", type=int, help="devices (processes) per node")
    t.add_argument("--strategy", help="auto, or ddp for data parallel (gloo backend on CPU)")
    t.add_argument("--num-nodes", type=int, dest="num_nodes", help="nodes for multi-node DDP")
    t.add_argument(
        "--context-parallel",
        type=int,
        dest="context_parallel",
        metavar="P",
        help="split each sequence over P processes (with --strategy ddp; the other "
        "factor of the process count is data parallel)",
    )
    t.add_argument("--precision", help="32-true, 64-true, bf16-mixed, 16-mixed")
    t.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue a stopped run from OUT/checkpoints/last.ckpt, or from CKPT",
    )
    t.add_argument(
        "--init-from",
        dest="init_from",
        metavar="CKPT",
        help="start from this checkpoint's model weights (fine-tuning, curriculum)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on a split",
        description="Evaluate a checkpoint (loaded with weights_only=True) on a split "
        "of the task it was trained on and print the metrics.",
    )
    e.add_argument("--checkpoint", required=True, help="path to a .ckpt file written by train")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default test)")
    e.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    e.add_argument(
        "--context-parallel",
        type=int,
        default=1,
        dest="context_parallel",
        metavar="P",
        help="split each sequence over P processes (launched here, or by torchrun "
        "--nproc-per-node P); metrics equal one process's",
    )
    e.add_argument(
        "--json",
        dest="json_out",
        metavar="PATH",
        help="also write the metrics (full precision) to this JSON file, atomically",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bar")

    for name, table, text in (
        ("bench", registry.BENCHES, "run a benchmark suite (JSON + PNG)"),
        ("data", registry.DATASETS, "generate or export a data set"),
    ):
        s = sub.add_parser(
            name,
            help=text,
            add_help=False,
            description=f"{text}. Choices: {', '.join(sorted(table)) or '(none)'}. "
            f"`equiscale {name} NAME --help` lists the options of NAME.",
        )
        s.add_argument(
            "-h", "--help", action="store_true", dest="show_help", help="show this help message and exit"
        )
        s.add_argument("name", nargs="?", metavar="NAME", help=f"one of: {', '.join(sorted(table))}")
        s.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def _sub_parser(kind: str, name: str) -> tuple[argparse.ArgumentParser, Any]:
    table = registry.BENCHES if kind == "bench" else registry.DATASETS
    module = registry.load(table, name, "benchmark" if kind == "bench" else "data set")
    parser = argparse.ArgumentParser(
        prog=f"equiscale {kind} {name}",
        description=(module.__doc__ or "").strip().split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(parser)
    return parser, module


def format_results(results: dict[str, Any]) -> str:
    """Test metrics and, for tasks with published numbers, the table beside them."""
    lines = [
        f"task {results['task']}, model {results['model']}, "
        f"{results.get('epochs_run', '?')} epochs, {results.get('n_parameters', '?')} parameters"
    ]
    early = _early_stop_note(results)
    if early:
        lines.append(early)
    test = results.get("test", {})
    lines += [f"  test {k:<20s} {v:.6g}" for k, v in sorted(test.items())]
    equivariance = results.get("equivariance") or {}
    if equivariance:
        lines.append(
            "  test relative equivariance error: "
            + ", ".join(f"{k} {v:.2g}" for k, v in equivariance.items())
        )
    monitor = results.get("monitor", "mse")
    published = results.get("published") or {}
    baselines = {
        k: v for k, v in (results.get("baselines") or {}).items() if "(" not in k or f"({monitor})" in k
    }  # only rows in the monitored metric
    if (published or baselines) and monitor in test:
        rows = {**published, **baselines, f"equiscale {results['model']} (this run)": test[monitor]}
        lines.append("")
        lines.append(f"  {'method':<48s} {'test ' + monitor:>14s}")
        for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
            mark = "  <--" if k.startswith("equiscale") else ""
            lines.append(f"  {k:<48s} {v:>14.4g}{mark}")
    return "\n".join(lines)


def _early_stop_note(results: dict[str, Any]) -> str | None:
    """A warning when the run did fewer epochs than its config asks for (``max_time`` reached), else
    None."""
    config = results.get("config") or {}
    done, planned = results.get("epochs_run"), config.get("max_epochs")
    if not isinstance(done, int) or not isinstance(planned, int) or done >= planned:
        return None
    if config.get("max_cpu_time"):
        return (
            f"  WARNING: stopped by its CPU-time budget max_cpu_time ({config['max_cpu_time']}) after "
            f"{done} of {planned} epochs (a budgeted run: the metrics are those of the budget)"
        )
    limit = config.get("max_time")
    return (
        f"  WARNING: stopped early {f'by max_time ({limit}) ' if limit else ''}after {done} of "
        f"{planned} epochs: the metrics below are from a shorter run than the config asks for"
        + ("; rerun on a less busy machine or raise max_time" if limit else "")
    )


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from equiscale.provenance import _git_commit

    _git_commit()  # records name the code at start, whatever changes while a run goes on
    if args.command == "train":
        from equiscale.train import fit, load_config

        fields = {
            k: getattr(args, k)
            for k in (
                "task",
                "model",
                "max_epochs",
                "max_time",
                "max_cpu_time",
                "lr",
                "batch_size",
                "seed",
                "out_dir",
                "accelerator",
                "devices",
                "strategy",
                "num_nodes",
                "precision",
                "init_from",
                "context_parallel",
            )
        }
        if args.no_progress:
            fields["progress"] = False
        cfg = load_config(args.config, args.overrides, **fields)
        results = fit(cfg, resume=args.resume)
        if results.get("command"):  # rank zero
            print(format_results(results))
            print(f"results: {os.path.join(cfg.out_dir, 'results.json')}")
            for path in results.get("plots", []):
                print(f"plot: {path}")
        return 0
    if args.command == "eval":
        from equiscale.train import evaluate

        metrics = evaluate(
            args.checkpoint,
            args.split,
            args.batch_size,
            progress=not args.no_progress,
            context_parallel=args.context_parallel,
        )
        if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0:
            return 0  # the other processes of a context-parallel evaluation print nothing
        for k, v in sorted(metrics.items()):
            print(f"{args.split} {k:<12s} {v:.6g}")
        if args.json_out:
            from equiscale.provenance import provenance, write_json

            write_json(
                args.json_out,
                {
                    "checkpoint": args.checkpoint,
                    "split": args.split,
                    "context_parallel": args.context_parallel,
                    "metrics": metrics,
                    **provenance(),
                },
            )
        return 0
    if args.name is None or args.name in ("-h", "--help") or args.show_help:
        sub = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001
        if args.show_help and args.name not in (None, "-h", "--help"):
            _sub_parser(args.command, args.name)[0].print_help()
            return 0
        sub.print_help()
        return 0 if (args.name or args.show_help) else 2
    sub_parser, module = _sub_parser(args.command, args.name)
    sub_args = sub_parser.parse_args(args.rest)
    module.run(sub_args)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("equiscale: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if type(exc).__name__ != "SIGTERMException":  # Lightning's: a SystemExit with code None
            raise
        print(
            "equiscale: stopped by SIGTERM; the last completed epoch's checkpoint is kept "
            "(continue with --resume)",
            file=sys.stderr,
        )
        return 143
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        PermissionError,
        FloatingPointError,
        MemoryError,
    ) as exc:
        if os.environ.get("EQUISCALE_DEBUG"):
            raise
        print(f"equiscale: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # after its subclasses above
        if exc.errno != errno.ENOSPC or os.environ.get("EQUISCALE_DEBUG"):
            raise
        print(
            f"equiscale: error: no space left on device ({exc.filename or 'writing a file'}); "
            "files are written atomically, so what was there before is intact; free space and "
            "continue with --resume",
            file=sys.stderr,
        )
        return 28


if __name__ == "__main__":
    sys.exit(main())
