"""Geometric associative recall as a training task (:mod:`equiscale.data.recall`).

Loss: MSE between the predicted point and the target value. Metrics: ``mse`` and ``accuracy``
(nearest codebook value); the best checkpoint minimises validation ``mse``. :func:`evaluate_lengths`
measures accuracy against sequence length for a trained model (same vocabulary and symmetries).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from equiscale.data.recall import RecallDataset, collate_recall, recall_accuracy, recall_mse
from equiscale.provenance import save_figure
from equiscale.train.task import TaskData

__all__ = ["recall_task", "evaluate_lengths"]


def recall_task(
    length: int = 1024,
    vocab: int = 16,
    n_train: int = 20000,
    n_val: int = 1000,
    n_test: int = 1000,
    rotate: bool = True,
    translate: bool = False,
    translate_scale: float = 10.0,
    seed: int = 0,
) -> TaskData:
    """Train/val/test recall sets (disjoint seeds ``seed``, ``seed + 1``, ``seed + 2``)."""
    kw = {
        "length": length,
        "vocab": vocab,
        "rotate": rotate,
        "translate": translate,
        "translate_scale": translate_scale,
    }
    train = RecallDataset(n_train, seed=3 * seed, **kw)
    val = RecallDataset(n_val, seed=3 * seed + 1, **kw)
    test = RecallDataset(n_test, seed=3 * seed + 2, **kw)
    sym = ("rotated" if rotate else "fixed frame") + (" + translated" if translate else "")
    return TaskData(
        train=train,
        val=val,
        test=test,
        collate=collate_recall,
        loss=recall_mse,
        metrics=lambda pred, batch: {
            "mse": recall_mse(pred, batch),
            "accuracy": recall_accuracy(pred, batch),
        },
        monitor="mse",
        describe=f"geometric associative recall, length {length}, V={vocab}, {sym}, "
        f"{len(train)}/{len(val)}/{len(test)} train/val/test",
    )


@torch.no_grad()
def evaluate_lengths(
    model: nn.Module,
    lengths: list[int],
    vocab: int = 16,
    n: int = 500,
    batch_size: int = 50,
    rotate: bool = True,
    translate: bool = False,
    seed: int = 12345,
) -> dict[int, dict[str, float]]:
    """``{length: {"accuracy", "mse"}}`` on ``n`` fresh samples per length."""
    model.eval()
    device = next(model.parameters()).device
    out: dict[int, dict[str, float]] = {}
    for length in lengths:
        ds = RecallDataset(n, length, vocab, rotate=rotate, translate=translate, seed=seed)
        acc = mse = 0.0
        for start in range(0, n, batch_size):
            batch = collate_recall([ds[i] for i in range(start, min(n, start + batch_size))])
            batch = {k: v.to(device) for k, v in batch.items()}
            pred = model(batch)
            k = batch["pos"].shape[0]
            acc += recall_accuracy(pred, batch).item() * k
            mse += recall_mse(pred, batch).item() * k
        out[length] = {"accuracy": acc / n, "mse": mse / n}
    return out


def main(argv: list[str] | None = None) -> dict:
    """``python -m equiscale.train.tasks.recall --checkpoint A.ckpt [B.ckpt ...] --lengths ...``

    Accuracy and MSE against sequence length for trained recall checkpoints (same vocabulary and
    symmetries as in training), written with the command, commit and environment to ``--out``.
    """
    import argparse
    import time

    from equiscale.provenance import write_record
    from equiscale.train.trainer import load_checkpoint

    p = argparse.ArgumentParser(
        prog="python -m equiscale.train.tasks.recall", description="recall accuracy vs sequence length"
    )
    p.add_argument("--checkpoint", nargs="+", required=True)
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--out", default="results/recall_vs_length.json")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    started = time.time()
    models = {}
    for ckpt in args.checkpoint:
        module, cfg = load_checkpoint(ckpt)
        da = cfg.data_args
        res = evaluate_lengths(
            module.model,
            args.lengths,
            vocab=da.get("vocab", 16),
            n=args.n,
            batch_size=args.batch_size,
            rotate=da.get("rotate", True),
            translate=da.get("translate", False),
        )
        models[ckpt] = {
            "model": cfg.model,
            "model_args": cfg.model_args,
            "trained_length": da.get("length"),
            "vocab": da.get("vocab", 16),
            "by_length": {str(k): v for k, v in res.items()},
        }
        for length, m in res.items():
            print(f"{cfg.model:<16s} length {length:>6d}  accuracy {m['accuracy']:.4f}  mse {m['mse']:.4g}")
    record = write_record(
        args.out,
        {
            "benchmark": "recall_vs_length",
            "models": models,
            "lengths": args.lengths,
            "samples_per_length": args.n,
        },
        started=started,
    )
    if not args.no_plot:
        print(f"plot: {plot_lengths(record, Path(args.out).with_suffix('.png'))}")
    return record


def plot_lengths(record: dict, path: Path) -> Path:
    """Accuracy against sequence length, one line per checkpoint, its training length marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, m) in enumerate(record["models"].items()):
        acc = {int(k): 100 * v["accuracy"] for k, v in m["by_length"].items()}
        lengths = sorted(acc)
        label = f"{m['model']} trained at {m['trained_length']} ({Path(name).parent.parent.name})"
        ax.plot(lengths, [acc[n] for n in lengths], "o-", color=f"C{i}", label=label)
        if m["trained_length"] in acc:  # the training length, circled
            ax.plot([m["trained_length"]], [acc[m["trained_length"]]], "s", ms=11, mfc="none", color=f"C{i}")
    vocab = next(iter(record["models"].values()))["vocab"]
    ax.axhline(100 / vocab, color="gray", ls=":", label=f"chance (1/{vocab})")
    ax.set(
        xscale="log",
        xlabel="sequence length",
        ylabel="accuracy (%)",
        ylim=(0, 102),
        title=f"geometric associative recall, V = {vocab}, rotated ({record['samples_per_length']} "
        "samples per length)",
    )
    ax.set_xticks(record["lengths"], [str(n) for n in record["lengths"]])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
