"""``equiscale bench context``: SE3HyenaNet vs the equivariant transformer against sequence length.

Both networks share embedding, norms, gated MLPs and read-out and have equal width
(``--scalar-channels``, ``--vector-channels``) and depth; they differ only in the token mixer:
:class:`~equiscale.nn.hyena.SE3HyenaOperator` (FFT long convolutions, O(N log N)) vs
:class:`~equiscale.nn.attention.EquivariantAttention` (``scaled_dot_product_attention``, O(N^2) time;
its CPU/GPU kernels are flash-style, O(N) memory). One run measures, on the same inputs:

1. per arm and N (``--tokens``): forward and forward+backward time (best of the repeats, median
   beside it; fewer repeats when a call takes longer than ``--long-call-s``) and peak memory
   (of a call after one warm-up call, in a first pass over all arms and N); arms are
   ``se3hyena``, ``se3hyena_ckpt`` (``checkpoint_mixer=True``), ``transformer``,
   ``transformer_ckpt`` (``--arms``);
2. the largest N each arm fits in ``--memory-budget-mb``: the largest measured N within it, and
   the linear extrapolation of the measured peak memory (both networks are O(N) in memory);
3. the FFT long convolutions alone (``fft_conv`` on ``[1, N, C]`` and ``fft_cross_dot_conv`` on
   ``[1, N, 3, C]``, forward+backward) for ``--fft-tokens`` (8k .. 128k): the fitted exponent of
   t ~ N^p and t / (N log2 N), which is flat for N log N growth.

Peak CPU memory is the resident-set high-water mark: the kernel's ``VmHWM`` is reset
(``/proc/self/clear_refs``) before the call and compared with ``VmRSS`` before it; glibc's mmap
threshold is set to 64 KiB (``mallopt``) during the memory pass so every tensor of 64 KiB or more is
its own mapping and is returned on free; the timing pass runs afterwards with the threshold at 32 MiB
(heap reused for smaller blocks; long-N activations are still returned on free, so the timing pass
does not keep freed memory and grow until a 1M-token run is killed). On CUDA it is
``torch.cuda.max_memory_allocated``. The record names the method.

Writes JSON (default ``results/bench_context_<device>.json``) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from equiscale.bench.common import (
    check_bench_args,
    device_slug,
    fit_exponent,
    peak_memory,
    time_fn,
    write_record,
)
from equiscale.models.equivariant_transformer import EquivariantTransformer
from equiscale.models.se3_hyena import SE3HyenaNet
from equiscale.ops.long_conv import fft_conv, fft_cross_dot_conv

__all__ = ["add_arguments", "run", "peak_bytes", "memory_method"]

ARMS = ("se3hyena", "se3hyena_ckpt", "transformer", "transformer_ckpt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:k")
    parser.add_argument(
        "--tokens",
        type=int,
        nargs="+",
        default=[1024, 2048, 4096, 8192, 16384],
        help="sequence lengths N (--full adds 32k and 64k)",
    )
    parser.add_argument("--full", action="store_true", help="also run N = 32768 and 65536 tokens")
    parser.add_argument(
        "--arms",
        nargs="+",
        default=list(ARMS),
        choices=ARMS,
        help="networks to compare (_ckpt: checkpointed token mixer)",
    )
    parser.add_argument("--scalar-channels", type=int, default=32, help="scalar channels of both networks")
    parser.add_argument("--vector-channels", type=int, default=8, help="vector channels of both networks")
    parser.add_argument("--depth", type=int, default=4, help="layers of both networks")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (transformer arms)")
    parser.add_argument("--batch", type=int, default=1, help="sequences per batch")
    parser.add_argument("--causal", action="store_true", help="causal token mixers (else bidirectional)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per measurement (best and median reported)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed calls before timing, the first (sizing) call included"
    )
    parser.add_argument(
        "--long-call-s",
        type=float,
        default=3.0,
        help="calls longer than this (s) get --long-repeats timed repeats, no warm-up",
    )
    parser.add_argument("--long-repeats", type=int, default=1, help="timed repeats of a long call")
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=1024.0,
        help="memory budget (MiB) for the largest N each arm fits",
    )
    parser.add_argument(
        "--fft-tokens",
        type=int,
        nargs="+",
        default=[8192, 16384, 32768, 65536, 131072],
        help="sequence lengths of the FFT long-convolution scaling",
    )
    parser.add_argument(
        "--fft-channels", type=int, default=64, help="channels C of the FFT long-convolution scaling"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 keeps timings stable on a shared machine)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs and weights")
    parser.add_argument(
        "--out", default=None, help="JSON path (results/bench_context_<device>.json when not given)"
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG beside the JSON")


# ---------------------------------------------------------------------------------------------------
# peak memory


_LIBC: Any = None
_M_MMAP_THRESHOLD = -3


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6")
    return _LIBC


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def memory_method(device: str) -> str:
    """Which peak-memory measurement :func:`peak_bytes` uses on ``device``."""
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated - memory_allocated before"
    if os.path.exists("/proc/self/clear_refs") and os.access("/proc/self/clear_refs", os.W_OK):
        return (
            "Linux VmHWM after - VmRSS before (clear_refs reset; glibc mmap threshold 64 KiB "
            "in the memory pass, 32 MiB in the timing pass that follows it)"
        )
    raise RuntimeError("CPU peak memory needs Linux /proc/self/clear_refs (writable); not available")


def peak_bytes(fn: Callable[[], Any], device: str) -> int:
    """Peak memory of one call of ``fn`` above what was live before (see the module docstring)."""
    if torch.device(device).type == "cuda":
        return peak_memory(fn, device)
    memory_method(device)
    libc = _libc()
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status("VmRSS:")
    fn()
    return max(0, _status("VmHWM:") - before)


#: the "fast" mmap threshold: blocks below it reuse the heap; larger ones (at long N, every
#: activation) are mappings returned on free. With a 1 GiB threshold the heap fragmented inside
#: each long-N call: at 1M tokens (Cs 8, Cv 4, depth 1, peak 3.6 GB) the resident set reached
#: 11.0 GB (10.9 GB with malloc_trim between calls), against 4.8 GB at 32 MiB; the price is
#: page faults on fresh tensors (forward 8-10 s -> 13.6 s there).
FAST_MMAP_THRESHOLD = 32 << 20


def set_allocator_mode(mode: str) -> None:
    """glibc on the CPU: ``"measure"`` makes every block >= 64 KiB its own mapping, returned on
    free (RSS follows the live tensors); ``"fast"`` (32 MiB threshold, glibc's largest dynamic
    one) reuses the heap for smaller blocks, so timed code at moderate N is not charged page
    faults for every fresh tensor, while long-N activations are still returned on free.
    Measuring after "fast" is unreliable (the heap keeps freed blocks), so all memory probes run
    first."""
    _libc().mallopt(_M_MMAP_THRESHOLD, 65536 if mode == "measure" else FAST_MMAP_THRESHOLD)
    _libc().malloc_trim(0)


# ---------------------------------------------------------------------------------------------------
# measurements


def _build(arm: str, args: argparse.Namespace) -> torch.nn.Module:
    common = {"scalar_in": 3, "causal": args.causal, "checkpoint_mixer": arm.endswith("_ckpt")}
    if arm.startswith("se3hyena"):
        return SE3HyenaNet(args.scalar_channels, args.vector_channels, args.depth, **common)
    return EquivariantTransformer(
        args.scalar_channels, args.vector_channels, args.depth, heads=args.heads, **common
    )


def _timed(fn: Callable[[], Any], args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Time ``fn`` after ``--warmup`` calls (one when a call is long).

    A call longer than ``--long-call-s`` gets ``--long-repeats`` more timed calls, shorter ones
    ``--repeats``. Reported: the median and the minimum ("best of", the least disturbed by other
    processes on a shared machine; for long calls the warm-up call counts too, its one-time cost
    being negligible there).
    """
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    first = time.perf_counter() - start
    long = first > args.long_call_s
    if not long:
        for _ in range(max(args.warmup - 1, 0)):
            fn()
    times = [
        time_fn(fn, warmup=0, repeats=1, device=device)["median_ms"]
        for _ in range(args.long_repeats if long else args.repeats)
    ]
    if long:
        times.append(first * 1e3)
    times.sort()
    return {
        "median_ms": times[len(times) // 2],
        "min_ms": times[0],
        "max_ms": times[-1],
        "repeats": len(times),
        "first_call_ms": first * 1e3,
    }


def _setup(arm: str, n: int, args: argparse.Namespace) -> tuple[torch.nn.Module, Callable, Callable]:
    device = args.device
    gen = torch.Generator().manual_seed(args.seed + n)
    batch = {
        "pos": torch.randn(args.batch, n, 3, generator=gen).to(device),
        "token_type": torch.randn(args.batch, n, 3, generator=gen).to(device),
    }
    torch.manual_seed(args.seed)
    model = _build(arm, args).to(device)

    def fwd() -> None:
        with torch.no_grad():
            model(batch)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        model(batch).square().sum().backward()

    return model, fwd, fwd_bwd


def _memory_arm(arm: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    """Peak memory of forward and of forward+backward, each after one warm-up call."""
    _, fwd, fwd_bwd = _setup(arm, n, args)
    fwd()
    mem_f = peak_bytes(fwd, args.device)
    fwd_bwd()
    mem_fb = peak_bytes(fwd_bwd, args.device)
    return {"peak_forward_mb": mem_f / 2**20, "peak_forward_backward_mb": mem_fb / 2**20}


def _measure_arm(arm: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    model, fwd, fwd_bwd = _setup(arm, n, args)
    t_f = _timed(fwd, args, args.device)
    t_fb = _timed(fwd_bwd, args, args.device)
    return {
        "arm": arm,
        "tokens": n,
        "forward_ms": t_f["min_ms"],
        "forward_median_ms": t_f["median_ms"],
        "forward_max_ms": t_f["max_ms"],
        "forward_backward_ms": t_fb["min_ms"],
        "forward_backward_median_ms": t_fb["median_ms"],
        "forward_backward_max_ms": t_fb["max_ms"],
        "repeats": t_fb["repeats"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "loadavg_1min": os.getloadavg()[0],
    }


def _fft_scaling(args: argparse.Namespace) -> dict[str, Any]:
    device, c = args.device, args.fft_channels
    rows = []
    for n in args.fft_tokens:
        gen = torch.Generator().manual_seed(n)
        u = torch.randn(1, n, c, generator=gen).to(device).requires_grad_(True)
        h = torch.randn(n, c, generator=gen).to(device).requires_grad_(True)
        q = torch.randn(1, n, 3, c // 4, generator=gen).to(device).requires_grad_(True)
        k = torch.randn(1, n, 3, c // 4, generator=gen).to(device).requires_grad_(True)

        def conv(u: torch.Tensor = u, h: torch.Tensor = h) -> None:
            fft_conv(u, h).square().sum().backward()

        def cross(q: torch.Tensor = q, k: torch.Tensor = k) -> None:
            y, d = fft_cross_dot_conv(q, k, dim=-3, vector_dim=-2)
            (y.square().sum() + d.square().sum()).backward()

        t1 = _timed(conv, args, device)["min_ms"]
        t2 = _timed(cross, args, device)["min_ms"]
        rows.append(
            {
                "tokens": n,
                "fft_conv_fwd_bwd_ms": t1,
                "fft_cross_dot_conv_fwd_bwd_ms": t2,
                "fft_conv_ms_per_NlogN": t1 / (n * math.log2(n)) * 1e6,
                "fft_cross_dot_conv_ms_per_NlogN": t2 / (n * math.log2(n)) * 1e6,
            }
        )
        print(f"  fft  N={n:>7d}  fft_conv {t1:9.1f} ms  fft_cross_dot_conv {t2:9.1f} ms", flush=True)
    ns = [r["tokens"] for r in rows]
    out: dict[str, Any] = {
        "rows": rows,
        "channels": c,
        "shapes": {
            "fft_conv": f"u [1, N, {c}], h [N, {c}]",
            "fft_cross_dot_conv": f"q, k [1, N, 3, {c // 4}]",
        },
    }
    if len(ns) >= 2:
        nlogn = fit_exponent(ns, [n * math.log2(n) for n in ns])
        out["exponent_of_NlogN_over_range"] = nlogn
        for key in ("fft_conv", "fft_cross_dot_conv"):
            ts = [r[f"{key}_fwd_bwd_ms"] for r in rows]
            per = [r[f"{key}_ms_per_NlogN"] for r in rows]
            out[f"{key}_exponent"] = fit_exponent(ns, ts)
            out[f"{key}_NlogN_spread"] = max(per) / min(per)
    return out


def _fit_budget(rows: list[dict[str, Any]], budget_mb: float) -> dict[str, Any]:
    ns = [r["tokens"] for r in rows]
    mem = [r["peak_forward_backward_mb"] for r in rows]
    within = [n for n, m in zip(ns, mem) if m <= budget_mb]
    out: dict[str, Any] = {"largest_measured_within_budget": max(within) if within else None}
    if len(ns) >= 2:
        # least-squares line through the largest half of the points (memory is O(N) for both)
        pts = sorted(zip(ns, mem))[len(ns) // 2 :]
        if len(pts) >= 2:
            mx = sum(p[0] for p in pts) / len(pts)
            my = sum(p[1] for p in pts) / len(pts)
            sxx = sum((p[0] - mx) ** 2 for p in pts)
            slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else float("nan")
            icpt = my - slope * mx
            out["mb_per_token"] = slope
            out["extrapolated_max_tokens"] = int((budget_mb - icpt) / slope) if slope and slope > 0 else None
    return out


# ---------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    check_bench_args(
        args,
        at_least_one=(
            "scalar_channels",
            "vector_channels",
            "heads",
            "batch",
            "repeats",
            "long_repeats",
            "threads",
        ),
        non_negative=("depth", "warmup"),
        lists_at_least_one=("tokens",),
    )
    if torch.device(args.device).type == "cpu":
        torch.set_num_threads(args.threads)
    tokens = sorted(set(args.tokens + ([32768, 65536] if args.full else [])))
    method = memory_method(args.device)
    cpu = torch.device(args.device).type == "cpu"
    print(
        f"context benchmark on {args.device}: width {args.scalar_channels} scalars + "
        f"{args.vector_channels} vectors, depth {args.depth}, heads {args.heads}, batch "
        f"{args.batch}, {'causal' if args.causal else 'bidirectional'}; memory: {method}",
        flush=True,
    )
    memory: dict[tuple[str, int], dict[str, float]] = {}
    if cpu:
        set_allocator_mode("measure")
    for n in tokens:  # 1. all memory probes (see set_allocator_mode)
        for arm in args.arms:
            memory[arm, n] = _memory_arm(arm, n, args)
            print(
                f"  {arm:<17s} N={n:>6d}  peak fwd {memory[arm, n]['peak_forward_mb']:8.1f} MB  "
                f"fwd+bwd {memory[arm, n]['peak_forward_backward_mb']:8.1f} MB",
                flush=True,
            )
    if cpu:
        set_allocator_mode("fast")
    rows: list[dict[str, Any]] = []
    for n in tokens:  # 2. timings
        for arm in args.arms:
            r = {**_measure_arm(arm, n, args), **memory[arm, n]}
            rows.append(r)
            print(
                f"  {arm:<17s} N={n:>6d}  fwd {r['forward_ms']:9.1f} ms  fwd+bwd "
                f"{r['forward_backward_ms']:9.1f} ms",
                flush=True,
            )
    summary: dict[str, Any] = {}
    for n in tokens:
        by = {r["arm"]: r for r in rows if r["tokens"] == n}
        entry: dict[str, Any] = {}
        for hy in ("se3hyena", "se3hyena_ckpt"):
            for tf in ("transformer", "transformer_ckpt"):
                if hy in by and tf in by:
                    entry[f"{tf}/{hy}_fwd_bwd_time_ratio"] = (
                        by[tf]["forward_backward_ms"] / by[hy]["forward_backward_ms"]
                    )
                    entry[f"{tf}/{hy}_forward_time_ratio"] = by[tf]["forward_ms"] / by[hy]["forward_ms"]
                    entry[f"{tf}/{hy}_peak_memory_ratio"] = (
                        by[tf]["peak_forward_backward_mb"] / by[hy]["peak_forward_backward_mb"]
                    )
        summary[str(n)] = entry
    budget = {
        arm: _fit_budget([r for r in rows if r["arm"] == arm], args.memory_budget_mb) for arm in args.arms
    }
    exponents = {}
    for arm in args.arms:
        sub = [r for r in rows if r["arm"] == arm and r["tokens"] >= 4096]
        if len(sub) >= 2:
            exponents[arm] = fit_exponent([r["tokens"] for r in sub], [r["forward_backward_ms"] for r in sub])
    fft = _fft_scaling(args) if args.fft_tokens else {}
    record = {
        "benchmark": "context",
        "config": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "memory_method": method,
        "rows": rows,
        "ratios": summary,
        "fwd_bwd_time_exponent_from_4k": exponents,
        "memory_budget_mb": args.memory_budget_mb,
        "max_tokens_in_budget": budget,
        "fft_scaling": fft,
    }
    out = Path(args.out or f"results/bench_context_{device_slug(args.device)}.json")
    full = write_record(out, record, device=args.device, started=started)
    for n, entry in summary.items():
        text = ", ".join(f"{k} {v:.2f}" for k, v in entry.items() if "fwd_bwd" in k or "memory" in k)
        print(f"  N={n}: {text}")
    if fft:
        rng = f"{min(args.fft_tokens)}..{max(args.fft_tokens)}"
        print(
            f"  fft exponents {rng}: fft_conv {fft.get('fft_conv_exponent', float('nan')):.3f}, "
            f"cross_dot {fft.get('fft_cross_dot_conv_exponent', float('nan')):.3f} "
            f"(N log2 N over this range: {fft.get('exponent_of_NlogN_over_range', float('nan')):.3f})"
        )
    print(f"wrote {out}")
    if not args.no_plot:
        full["plot"] = str(_plot(full, out.with_suffix(".png")))
        print(f"wrote {full['plot']}")
    return full


def _plot(record: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equiscale.provenance import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    rows = record["rows"]
    for i, arm in enumerate(record["config"]["arms"]):
        sub = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["tokens"])
        ns = [r["tokens"] for r in sub]
        color = f"C{i}"
        axes[0].loglog(ns, [r["forward_backward_ms"] for r in sub], "o-", color=color, label=f"{arm} fwd+bwd")
        axes[0].loglog(ns, [r["forward_ms"] for r in sub], "x--", color=color, alpha=0.6, label=f"{arm} fwd")
        axes[1].loglog(ns, [r["peak_forward_backward_mb"] for r in sub], "o-", color=color, label=arm)
    axes[0].set(xlabel="tokens N", ylabel="time (ms)", title="time vs N")
    axes[1].axhline(record["memory_budget_mb"], color="gray", ls=":", label="budget")
    axes[1].set(xlabel="tokens N", ylabel="peak memory fwd+bwd (MiB)", title="peak memory vs N")
    fft = record.get("fft_scaling") or {}
    if fft.get("rows"):
        ns = [r["tokens"] for r in fft["rows"]]
        for key, c in (("fft_conv", "C0"), ("fft_cross_dot_conv", "C1")):
            ts = [r[f"{key}_fwd_bwd_ms"] for r in fft["rows"]]
            axes[2].loglog(
                ns, ts, "o-", color=c, label=f"{key} (p={fft.get(key + '_exponent', float('nan')):.2f})"
            )
            ref = [ts[0] * (n * math.log2(n)) / (ns[0] * math.log2(ns[0])) for n in ns]
            axes[2].loglog(ns, ref, ":", color=c, alpha=0.7, label=f"{key}: N log N from first")
        axes[2].set(xlabel="tokens N", ylabel="fwd+bwd time (ms)", title="FFT long convolutions vs N log N")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"equiscale bench context - {record['device']} - {record['date_utc']}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
