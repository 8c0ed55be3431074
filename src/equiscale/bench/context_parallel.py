"""``equiscale bench context-parallel``: one sequence split over P processes (context parallelism).

For SE3HyenaNet forward + backward (+ the all-reduce of the parameter gradients) on one sequence
of ``--tokens`` tokens, split over ``P`` CPU processes (gloo) for each ``P`` in ``--ranks``:

1. per-rank peak memory of one step above what was live before it (the rank's own inputs and the
   model), the same measurement as ``bench context`` (Linux ``VmHWM`` after a ``clear_refs`` reset,
   glibc mmap threshold 64 KiB so freed tensors leave the resident set), after one warm-up step;
   its ratio to ``P = 1`` (``1/P`` would be perfect sharding); beside it, the bytes autograd saves
   for backward in the forward (the activations proper, counted once per storage), whose ratio
   shows how much of the peak is held between forward and backward and how much is the transient
   work of one ring step;
2. bytes each rank sends per step (:func:`~equiscale.distributed.communication_bytes`: token
   exchanges exactly, all-reduces by payload) and the time per step (median of ``--repeats``
   after the warm-up; the ranks share this machine's cores, so time is not the point here);
3. the longest sequence: one step at each of ``--longest`` lengths for each ``P`` in
   ``--longest-ranks``, until a step fails or is killed (out of memory), with its per-rank peak.

A linear model of the per-rank peak, ``a N + b N / P`` (replicated + sharded bytes per token),
is fitted to item 1 and gives ``ranks_needed``: the fewest ranks whose estimated peak fits
``--memory-budget-mb`` for a few lengths.

Writes JSON (default ``results/bench_context_parallel_cpu.json``) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from equiscale.bench.common import check_bench_args, write_record

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokens", type=int, default=65536, help="sequence length of the memory and communication scaling"
    )
    parser.add_argument(
        "--ranks",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="numbers of processes P to split the sequence over",
    )
    parser.add_argument(
        "--longest",
        type=int,
        nargs="*",
        default=[1 << 20, 1 << 21],
        help="lengths tried one step each, in increasing order (none: skip)",
    )
    parser.add_argument(
        "--longest-ranks",
        type=int,
        nargs="+",
        default=[1, 2],
        help="numbers of processes for the longest-sequence runs",
    )
    parser.add_argument("--scalar-channels", type=int, default=8, help="scalar width Cs")
    parser.add_argument("--vector-channels", type=int, default=4, help="vector width Cv")
    parser.add_argument("--depth", type=int, default=1, help="SE(3)-Hyena blocks")
    parser.add_argument("--batch", type=int, default=1, help="sequences per step")
    parser.add_argument(
        "--bidirectional", action="store_true", help="bidirectional convolutions (default causal)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=16384.0,
        help="per-rank memory for the ranks_needed estimate",
    )
    parser.add_argument(
        "--step-timeout-s", type=float, default=1800.0, help="give up a longest-sequence run after this long"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--out",
        default="results/bench_context_parallel_cpu.json",
        help="JSON record (a PNG is written beside it)",
    )


def _saved_bytes(forward) -> int:
    """Bytes of the distinct storages autograd saves for backward in ``forward()`` (the
    activations a step holds between its forward and backward; parameters and inputs included)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(seen.values())


def _rank_main(
    rank: int, world: int, init: str, cfg: dict[str, Any], length: int, out_dir: str, timed: bool
) -> None:
    import torch.distributed as dist

    from equiscale.bench.context import peak_bytes, set_allocator_mode
    from equiscale.distributed import Shard, all_reduce_gradients, communication_bytes, shard_bounds
    from equiscale.models.se3_hyena import SE3HyenaNet

    torch.set_num_threads(cfg["threads"])
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        set_allocator_mode("measure")
        s, e = shard_bounds(length, world)[rank]
        g = torch.Generator().manual_seed(cfg["seed"] + rank)
        pos = torch.randn(cfg["batch"], e - s, 3, generator=g)
        sca = torch.randn(cfg["batch"], e - s, 1, generator=g)
        torch.manual_seed(cfg["seed"])
        model = SE3HyenaNet(
            cfg["scalar_channels"],
            cfg["vector_channels"],
            cfg["depth"],
            scalar_in=1,
            causal=not cfg["bidirectional"],
        )
        shard = Shard.gather(e - s)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            _, v, _ = model.forward_tokens(pos, None, sca, shard=shard if world > 1 else None)
            v.square().mean().backward()
            if world > 1:
                all_reduce_gradients(model)

        start = time.perf_counter()
        if timed:
            step()  # warm-up
        dist.barrier()
        communication_bytes(reset=True)
        peak = peak_bytes(step, "cpu")
        first = time.perf_counter() - start
        sent = communication_bytes(reset=True)
        times = []
        if timed:
            set_allocator_mode("fast")
            for _ in range(cfg["repeats"]):
                dist.barrier()
                t0 = time.perf_counter()
                step()
                times.append((time.perf_counter() - t0) * 1e3)
            times.sort()
        saved = _saved_bytes(lambda: model.forward_tokens(pos, None, sca, shard=shard if world > 1 else None))
        rec = {
            "rank": rank,
            "tokens_on_rank": e - s,
            "peak_mb": peak / 2**20,
            "saved_for_backward_mb": saved / 2**20,
            "bytes_sent_per_step": sent,
            "step_ms": times[len(times) // 2] if times else None,
            "seconds": first,
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(rec))
    finally:
        dist.destroy_process_group()


def _launch(
    world: int, cfg: dict[str, Any], length: int, timed: bool, timeout: float | None = None
) -> dict[str, Any]:
    """Run one configuration in ``world`` fresh processes; ``{"ok": False, ...}`` if one dies."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mp.start_processes(
            _rank_main,
            args=(world, f"file://{tmp}/rendezvous", cfg, length, tmp, timed),
            nprocs=world,
            join=False,
            start_method="spawn",
        )
        started = time.time()
        error = None
        try:
            while not ctx.join(timeout=5):
                if timeout is not None and time.time() - started > timeout:
                    for p in ctx.processes:
                        p.kill()
                    error = f"timed out after {timeout:.0f} s"
                    break
        except Exception as exc:  # a rank raised or was killed (e.g. out of memory: SIGKILL)
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        ranks = []
        for r in range(world):
            f = Path(tmp, f"rank{r}.json")
            if f.exists():
                ranks.append(json.loads(f.read_text()))
    if error is not None or len(ranks) != world:
        return {"ok": False, "error": error or "a rank wrote no result", "per_rank": ranks}
    return {
        "ok": True,
        "per_rank": ranks,
        "peak_mb_max": max(r["peak_mb"] for r in ranks),
        "bytes_sent_per_step_max": max(r["bytes_sent_per_step"] for r in ranks),
        "step_ms": max((r["step_ms"] or 0.0) for r in ranks) or None,
        "wall_s": time.time() - started,
    }


def _fit(rows: list[dict[str, Any]], n: int) -> dict[str, float] | None:
    """Least squares of peak = n (a + b / P) over the scaling rows: bytes per token replicated (a)
    and sharded (b)."""
    pts = [(r["ranks"], r["peak_mb_max"]) for r in rows if r["ok"]]
    if len(pts) < 2:
        return None
    xs = torch.tensor([[1.0, 1.0 / p] for p, _ in pts], dtype=torch.float64) * n
    ys = torch.tensor([m for _, m in pts], dtype=torch.float64)
    sol = torch.linalg.lstsq(xs, ys[:, None]).solution[:, 0]
    return {"replicated_mb_per_token": float(sol[0]), "sharded_mb_per_token": float(sol[1])}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    check_bench_args(
        args,
        at_least_one=("tokens", "scalar_channels", "vector_channels", "batch", "repeats", "threads"),
        non_negative=("depth",),
        lists_at_least_one=("ranks", "longest_ranks"),
    )
    if any(n < 1 for n in args.longest):
        raise ValueError(f"--longest must list lengths >= 1, got {args.longest}")
    if args.memory_budget_mb <= 0 or args.step_timeout_s <= 0:
        raise ValueError("--memory-budget-mb and --step-timeout-s must be > 0")
    cfg = {
        k: getattr(args, k)
        for k in (
            "scalar_channels",
            "vector_channels",
            "depth",
            "batch",
            "bidirectional",
            "repeats",
            "threads",
            "seed",
        )
    }
    rows = []
    for p in sorted(set(args.ranks)):
        res = _launch(p, cfg, args.tokens, timed=True)
        rows.append({"ranks": p, "tokens": args.tokens, **res})
        print(
            f"  P={p}: "
            + (
                f"peak/rank {res['peak_mb_max']:8.1f} MB, sent/rank/step "
                f"{res['bytes_sent_per_step_max'] / 2**20:8.1f} MB, step "
                f"{res['step_ms']:8.0f} ms"
                if res["ok"]
                else f"failed: {res['error']}"
            ),
            flush=True,
        )
    base = next((r for r in rows if r["ok"] and r["ranks"] == 1), None)
    for r in rows:
        if r["ok"] and base is not None:
            r["peak_ratio_to_p1"] = r["peak_mb_max"] / base["peak_mb_max"]
            r["saved_for_backward_mb_max"] = max(x["saved_for_backward_mb"] for x in r["per_rank"])
            r["saved_ratio_to_p1"] = r["saved_for_backward_mb_max"] / max(
                x["saved_for_backward_mb"] for x in base["per_rank"]
            )
    fit = _fit(rows, args.tokens)
    ranks_needed = {}
    if fit is not None:
        for n in (1 << 20, 1 << 22, 1 << 24):
            a, b = fit["replicated_mb_per_token"] * n, fit["sharded_mb_per_token"] * n
            need = next((p for p in range(1, 1025) if a + b / p <= args.memory_budget_mb), None)
            ranks_needed[str(n)] = need
    longest = []
    for p in sorted(set(args.longest_ranks)):
        for n in sorted(args.longest):
            res = _launch(p, cfg, n, timed=False, timeout=args.step_timeout_s)
            res.pop("step_ms", None)
            longest.append({"ranks": p, "tokens": n, **res})
            print(
                f"  longest P={p} N={n}: "
                + (
                    f"ok, peak/rank {res['peak_mb_max']:8.1f} MB, {res['wall_s']:.0f} s"
                    if res["ok"]
                    else f"failed: {res['error']}"
                ),
                flush=True,
            )
            if not res["ok"]:
                break
    ok_longest = {
        str(p): max((r["tokens"] for r in longest if r["ranks"] == p and r["ok"]), default=None)
        for p in sorted(set(args.longest_ranks))
    }
    record = {
        "benchmark": "context-parallel SE3HyenaNet forward+backward, gloo CPU processes",
        "model": {
            "scalar_channels": args.scalar_channels,
            "vector_channels": args.vector_channels,
            "depth": args.depth,
            "batch": args.batch,
            "causal": not args.bidirectional,
            "dtype": "float32",
        },
        "memory_method": (
            "per rank: Linux VmHWM after - VmRSS before one step (clear_refs reset; "
            "glibc mmap threshold 64 KiB), after one warm-up step"
        ),
        "scaling": rows,
        "memory_model": fit,
        "memory_budget_mb": args.memory_budget_mb,
        "ranks_needed": ranks_needed,
        "longest": longest,
        "longest_ok_tokens": ok_longest,
        "cpu_count": os.cpu_count(),
    }
    full = write_record(args.out, record, started=started)
    _plot(full, Path(args.out).with_suffix(".png"))
    print(f"written: {args.out}")
    return full


def _plot(record: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equiscale.provenance import atomic_write_bytes

    rows = [r for r in record["scaling"] if r["ok"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ps = [r["ranks"] for r in rows]
    axes[0].plot(ps, [r["peak_mb_max"] for r in rows], "o-", label="peak (max over ranks)")
    if all("saved_for_backward_mb_max" in r for r in rows):
        axes[0].plot(ps, [r["saved_for_backward_mb_max"] for r in rows], "s-", label="saved for backward")
    if rows:
        p1 = rows[0]["peak_mb_max"] * rows[0]["ranks"]
        axes[0].plot(ps, [p1 / p for p in ps], "k--", label="1/P of P=1")
    axes[0].set(
        xlabel="processes P",
        ylabel="peak memory per rank (MiB)",
        title=f"one step, N = {rows[0]['tokens'] if rows else '?'} tokens",
    )
    axes[0].legend()
    axes[1].plot(ps, [r["bytes_sent_per_step_max"] / 2**20 for r in rows], "o-")
    axes[1].set(xlabel="processes P", ylabel="MiB sent per rank per step", title="communication")
    for ax in axes:
        ax.set_xticks(ps)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
