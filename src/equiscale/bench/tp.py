"""``equiscale bench tp``: the Gaunt tensor product back ends beside e3nn (and cuEquivariance).

For each degree L in ``--lmin..--lmax`` (inputs, output all of degree L), float32 by default,
features ``[batch, (L+1)^2, C]``:

- ``gaunt-<backend>`` for each requested back end (``GauntTensorProduct(L, L, L, backend)``);
- ``e3nn``: ``o3.TensorProduct`` on irreps ``C x 0e + C x 1o + ...`` (e3nn channel-major layout)
  restricted to exactly the Gaunt-nonzero paths (``l1 + l2 + l3`` even, triangle), mode "uuu",
  no weights. Inputs are converted to e3nn's layout outside the timed region;
- ``cueq``: cuEquivariance's ``ChannelWiseTensorProduct`` on the same paths (GPU only, when
  ``cuequivariance_torch`` is importable; otherwise a note says why it was skipped).

Forward (no autograd) and forward+backward (``out.backward(g)`` w.r.t. both inputs) are timed
separately with ``bench.common.time_fn`` (median of ``--repeats`` after warm-up; 3 repeats for calls
slower than ``--slow-ms``), in ``--rounds`` rounds that interleave the methods, so that bursts of
load on a shared machine hit every method alike; the reported time is the median of the round
medians. On the CPU the process keeps freed memory in its heap (glibc ``mallopt``, recorded as
``cpu_allocator``; ``--no-heap-reuse`` to disable): otherwise every large tensor of every method
faults in fresh pages, which on the test VM cost up to 5x the arithmetic.
The outputs of the Gaunt back ends are checked against each other
in the run. Reports speed-up of the fastest back end over e3nn per L and a log-log fitted exponent
per method over ``--fit-lmin..--lmax``. Writes JSON (default ``results/bench_tp_<device>.json``) and
a PNG beside it.

CPU record (committed): ``equiscale bench tp --lmin 1 --lmax 16 --e3nn-lmax 12 --dense-lmax 8
--batch 64 --channels 16 --repeats 10 --rounds 3 --threads 1 --device cpu``.
GPU (the issue's setting; not yet run, no GPU was available): ``equiscale bench tp --device cuda
--lmin 1 --lmax 8 --batch 10000 --channels 128`` (dense is skipped above ``--dense-max-gb``; a
method that runs out of memory is recorded in ``notes``).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from equiscale.bench.common import (
    check_bench_args,
    device_slug,
    fit_exponent,
    time_fn,
    write_record,
)
from equiscale.ops.gaunt import BACKENDS, GauntTensorProduct
from equiscale.provenance import save_figure
from equiscale.so3.gaunt import gaunt_coefficients_sparse
from equiscale.so3.layout import sh_irreps, to_e3nn

__all__ = ["add_arguments", "run", "e3nn_gaunt_paths_tp", "cueq_gaunt_paths_tp"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:k")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="floating-point type of the features",
    )
    parser.add_argument(
        "--lmin", type=int, default=1, help="smallest degree L timed (both inputs and the output of degree L)"
    )
    parser.add_argument("--lmax", type=int, default=12, help="largest degree L timed")
    parser.add_argument(
        "--fit-lmin", type=int, default=8, help="fit the log-log exponents over L = fit-lmin..lmax"
    )
    parser.add_argument(
        "--batch", type=int, default=64, help="batch size of the features [batch, (L+1)^2, C]"
    )
    parser.add_argument("--channels", type=int, default=16, help="channels C of the features")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=list(BACKENDS),
        choices=list(BACKENDS),
        help="Gaunt tensor product back ends to time",
    )
    parser.add_argument(
        "--dense-lmax",
        type=int,
        default=8,
        help="largest L for the dense back end (its memory grows like L^5 N)",
    )
    parser.add_argument(
        "--dense-max-gb",
        type=float,
        default=2.0,
        help="skip the dense back end where its [nnz, N] intermediate exceeds this (GB)",
    )
    parser.add_argument("--e3nn-lmax", type=int, default=12, help="largest L for e3nn (slow to build)")
    parser.add_argument("--no-e3nn", action="store_true", help="do not time e3nn")
    parser.add_argument(
        "--cueq",
        action="store_true",
        help="time cuEquivariance on the CPU too (its slow reference fallback; on "
        "CUDA it is timed whenever cuequivariance_torch is installed)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds over all methods (median of the round medians)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="warm-up calls in the first round, after the one that sizes the repeats (1 in later rounds)",
    )
    parser.add_argument(
        "--slow-ms", type=float, default=500.0, help="calls slower than this (ms) get 3 repeats and 1 warm-up"
    )
    parser.add_argument(
        "--no-heap-reuse",
        action="store_true",
        help="keep glibc's default malloc policy (fresh pages for large tensors)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 keeps timings stable on a shared machine)",
    )
    parser.add_argument(
        "--out", default=None, help="JSON path (results/bench_tp_<device>.json when not given)"
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG beside the JSON")


def e3nn_gaunt_paths_tp(lmax: int, channels: int, device: str | torch.device = "cpu"):
    """e3nn ``o3.TensorProduct`` "uuu" without weights on the Gaunt-nonzero paths of degree
    ``lmax`` (inputs and output ``channels x 0e + channels x 1o + ...``)."""
    from e3nn import o3

    irreps = sh_irreps(lmax, channels)
    paths = [
        (a, b, c, "uuu", False)
        for a in range(lmax + 1)
        for b in range(lmax + 1)
        for c in range(lmax + 1)
        if abs(a - b) <= c <= a + b and (a + b + c) % 2 == 0
    ]
    return o3.TensorProduct(irreps, irreps, irreps, paths).to(device), len(paths)


def cueq_gaunt_paths_tp(lmax: int, channels: int, device: str | torch.device = "cpu"):
    """cuEquivariance ``ChannelWiseTensorProduct``: ``C x (0e + 1o + .. L)`` times one
    ``0e + 1o + .. L`` on the Gaunt-nonzero paths (``l1 + l2 + l3`` even, output filtered to
    ``0e + 1o + .. L``), one shared weight per path and channel. Unlike e3nn's "uuu" product it
    keeps one output irrep per path (MACE follows it with a linear layer), so it does at least the
    Gaunt product's work."""
    import cuequivariance as cue
    import cuequivariance_torch as cuet

    irreps1 = cue.Irreps("O3", str(sh_irreps(lmax, channels)))
    irreps2 = cue.Irreps("O3", str(sh_irreps(lmax, 1)))
    out = [cue.O3(l, (-1) ** l) for l in range(lmax + 1)]
    return cuet.ChannelWiseTensorProduct(
        irreps1,
        irreps2,
        filter_irreps_out=out,
        layout=cue.mul_ir,
        shared_weights=True,
        internal_weights=True,
        device=device,
    )


def _phases(forward, inputs) -> dict[str, Any]:
    """The two timed callables of ``forward(*inputs)``: forward (no grad) and forward+backward."""

    def fwd():
        with torch.no_grad():
            return forward(*inputs)

    grad = torch.randn_like(fwd())
    leaves = [x.detach().requires_grad_() for x in inputs]

    def fwd_bwd():
        for x in leaves:
            x.grad = None
        forward(*leaves).backward(grad)

    return {"forward": fwd, "forward_backward": fwd_bwd}


def _time_interleaved(
    methods: dict[str, dict[str, Any]], args, notes: list[str]
) -> dict[str, dict[str, Any]]:
    """Time every (method, phase) in ``--rounds`` interleaved rounds (method after method, so a
    burst of load on the shared machine hits all methods alike); report the median of the
    per-round medians, and the spread of the round medians."""
    per_round: dict[tuple[str, str], list[float]] = {}
    repeats: dict[tuple[str, str], int] = {}
    failed: set[str] = set()
    for r in range(args.rounds):
        for name, phases in methods.items():
            for phase, fn in phases.items():
                key = (name, phase)
                if name in failed:
                    continue
                try:
                    _time_one(key, fn, r, args, per_round, repeats)
                except torch.cuda.OutOfMemoryError as error:  # recorded in the JSON notes
                    notes.append(f"{name} {phase}: out of memory ({str(error).splitlines()[0]})")
                    failed.add(name)
                    torch.cuda.empty_cache()
    out: dict[str, dict[str, Any]] = {}
    for (name, phase), medians in per_round.items():
        if name in failed:
            continue
        ordered = sorted(medians)
        out.setdefault(name, {})[phase] = {
            "median_ms": statistics.median(ordered),
            "min_round_ms": ordered[0],
            "max_round_ms": ordered[-1],
            "round_medians_ms": medians,
            "repeats_per_round": repeats[(name, phase)],
            "rounds": args.rounds,
        }
    return out


def _time_one(key, fn, r: int, args, per_round: dict, repeats: dict) -> None:
    """One round of one (method, phase): ``time_fn`` median appended to ``per_round[key]``."""
    if key not in repeats:  # first round: decide the repeats from one call
        start = time.perf_counter()
        fn()
        slow = (time.perf_counter() - start) * 1e3 > args.slow_ms
        repeats[key] = 3 if slow else args.repeats
    warmup = 0 if repeats[key] == 3 else (args.warmup if r == 0 else 1)
    stats = time_fn(fn, warmup=warmup, repeats=repeats[key], device=args.device)
    per_round.setdefault(key, []).append(stats["median_ms"])


def _reuse_heap() -> str:
    """Make glibc keep freed CPU tensors in the heap (mmap and trim thresholds at 1 GiB), so
    repeated calls reuse memory instead of faulting in fresh pages for every tensor >= 128 KiB
    (PyTorch's CPU allocator does not cache; on this VM page faults cost more than the
    arithmetic). Applies to every method alike; returns a description for the record."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return "default allocator (no glibc mallopt available)"
    ok = libc.mallopt(-3, 1 << 30) == 1 and libc.mallopt(-1, 1 << 30) == 1  # MMAP, TRIM thresholds
    return (
        "glibc mallopt M_MMAP_THRESHOLD = M_TRIM_THRESHOLD = 1 GiB (heap reused)"
        if ok
        else "default allocator (mallopt refused)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    check_bench_args(
        args,
        at_least_one=("batch", "channels", "threads", "repeats", "rounds"),
        non_negative=("lmin", "warmup", "dense_lmax", "e3nn_lmax"),
    )
    if args.lmax < max(args.lmin, 0):
        raise ValueError(f"--lmax must be >= --lmin ({args.lmin}) and >= 0, got {args.lmax}")
    torch.set_num_threads(args.threads)
    device = args.device
    dtype = getattr(torch, args.dtype)
    notes = []
    allocator = "default allocator" if args.no_heap_reuse else _reuse_heap()
    installed = importlib.util.find_spec("cuequivariance_torch") is not None
    cueq = installed and (device.startswith("cuda") or args.cueq)
    if not installed:
        notes.append("cuEquivariance skipped: cuequivariance_torch is not installed")
    elif not cueq:
        notes.append("cuEquivariance skipped: GPU only (device is CPU; --cueq times its CPU fallback)")
    elif not device.startswith("cuda"):
        notes.append("cuEquivariance on the CPU runs its naive fallback: a correctness run, not its speed")
    rows = []
    gen = torch.Generator().manual_seed(0)
    print(f"{'L':>3} {'method':>14} {'fwd ms':>10} {'fwd+bwd ms':>11}")
    for lmax in range(args.lmin, args.lmax + 1):
        k = (lmax + 1) ** 2
        x = torch.randn(args.batch, k, args.channels, generator=gen).to(device, dtype)
        y = torch.randn(args.batch, k, args.channels, generator=gen).to(device, dtype)
        methods: dict[str, dict[str, Any]] = {}
        extra: dict[str, dict[str, Any]] = {}
        outputs = {}
        for backend in args.backends:
            if backend == "dense" and lmax > args.dense_lmax:
                continue
            if backend == "dense":
                nnz = gaunt_coefficients_sparse(lmax, lmax, lmax)[1].numel()
                gigabytes = nnz * args.batch * args.channels * x.element_size() / 1e9
                if gigabytes > args.dense_max_gb:
                    notes.append(
                        f"dense skipped at L={lmax}: [nnz, N] intermediate "
                        f"{gigabytes:.3g} GB > --dense-max-gb {args.dense_max_gb}"
                    )
                    continue
            tp = GauntTensorProduct(lmax, lmax, lmax, backend=backend, device=device)
            try:
                with torch.no_grad():
                    outputs[backend] = tp(x, y).double()
                methods[f"gaunt-{backend}"] = _phases(tp, (x, y))
            except torch.cuda.OutOfMemoryError:  # recorded in the JSON notes
                notes.append(f"gaunt-{backend} at L={lmax}: out of memory")
                outputs.pop(backend, None)
                torch.cuda.empty_cache()
        if not outputs:
            continue
        first = next(iter(outputs.values()))
        scale = first.abs().max().item()
        check = max(((o - first).abs().max().item() / scale for o in outputs.values()), default=0.0)
        if check > (1e-4 if dtype == torch.float32 else 1e-10):
            raise RuntimeError(f"L={lmax}: Gaunt back ends disagree (relative {check:.2e})")
        if not args.no_e3nn and lmax <= args.e3nn_lmax:
            build = time.perf_counter()
            etp, n_paths = e3nn_gaunt_paths_tp(lmax, args.channels, device)
            etp = etp.to(dtype)
            extra["e3nn"] = {"paths": n_paths, "build_s": round(time.perf_counter() - build, 2)}
            xe, ye = to_e3nn(x).contiguous(), to_e3nn(y).contiguous()  # outside the timed region
            try:
                methods["e3nn"] = _phases(etp, (xe, ye))
            except torch.cuda.OutOfMemoryError:  # recorded in the JSON notes
                notes.append(f"e3nn at L={lmax}: out of memory")
                torch.cuda.empty_cache()
        if cueq:
            try:
                ctp = cueq_gaunt_paths_tp(lmax, args.channels, device)
                y1 = y[..., :1]  # channel-wise: C channels of x times one y
                methods["cueq"] = _phases(ctp, (to_e3nn(x).contiguous(), to_e3nn(y1).contiguous()))
            except Exception as error:  # recorded, never hidden: the record says why it is missing
                notes.append(f"cuEquivariance failed at L={lmax}: {type(error).__name__}: {error}")
                cueq = False
        timings = _time_interleaved(methods, args, notes)
        for name in timings:
            rows.append({"L": lmax, "method": name, **extra.get(name, {}), **timings[name]})
            _print(rows[-1])
    summary = _summarise(rows, args)
    for line in summary["lines"]:
        print(line)
    record = {
        "benchmark": "tp",
        "device": device,
        "dtype": args.dtype,
        "batch": args.batch,
        "channels": args.channels,
        "threads": args.threads,
        "rounds": args.rounds,
        "cpu_allocator": allocator,
        "lmin": args.lmin,
        "lmax": args.lmax,
        "fit_range": [args.fit_lmin, args.lmax],
        "notes": notes,
        "results": rows,
        "exponents": summary["exponents"],
        "speedup_vs_e3nn": summary["speedup"],
    }
    out = Path(args.out or f"results/bench_tp_{device_slug(device)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    full = write_record(out, record, device=device, started=started)
    if not args.no_plot:
        _plot(rows, summary["exponents"], out.with_suffix(".png"), args)
    print(f"wrote {out}")
    return full


def _print(row: dict[str, Any]) -> None:
    print(
        f"{row['L']:>3} {row['method']:>14} {row['forward']['median_ms']:>10.3f} "
        f"{row['forward_backward']['median_ms']:>11.3f}",
        flush=True,
    )


def _summarise(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    methods = sorted({r["method"] for r in rows})
    exponents: dict[str, dict[str, float]] = {}
    for method in methods:
        for phase in ("forward", "forward_backward"):
            pts = [
                (r["L"], r[phase]["median_ms"])
                for r in rows
                if r["method"] == method and r["L"] >= args.fit_lmin
            ]
            if len(pts) >= 2:
                exponents.setdefault(method, {})[phase] = round(
                    fit_exponent([p[0] for p in pts], [p[1] for p in pts]), 3
                )
    speedup: dict[str, dict[str, Any]] = {}
    lines = []
    for lmax in sorted({r["L"] for r in rows}):
        at = {r["method"]: r for r in rows if r["L"] == lmax}
        if "e3nn" not in at:
            continue
        entry = {}
        for phase in ("forward", "forward_backward"):
            gaunt = {m: r[phase]["median_ms"] for m, r in at.items() if m.startswith("gaunt-")}
            best = min(gaunt, key=gaunt.get)
            ratio = at["e3nn"][phase]["median_ms"] / gaunt[best]
            entry[phase] = {"best": best, "ratio": round(ratio, 2)}
        speedup[str(lmax)] = entry
        lines.append(
            f"L={lmax}: e3nn / {entry['forward']['best']} forward "
            f"{entry['forward']['ratio']:.1f}x, forward+backward "
            f"{entry['forward_backward']['ratio']:.1f}x ({entry['forward_backward']['best']})"
        )
    for method, e in exponents.items():
        lines.append(f"exponent {method}: " + ", ".join(f"{k} {v:.2f}" for k, v in e.items()))
    return {"exponents": exponents, "speedup": speedup, "lines": lines}


def _plot(rows, exponents, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, phase in zip(axes, ("forward", "forward_backward")):
        for method in sorted({r["method"] for r in rows}):
            pts = sorted((r["L"], r[phase]["median_ms"]) for r in rows if r["method"] == method)
            label = method
            if phase in exponents.get(method, {}):
                label += f" (L^{exponents[method][phase]:.2f})"
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set_xlabel("L (inputs and output 0..L)")
        ax.set_ylabel("median time [ms]")
        ax.set_title(
            f"{phase.replace('_', '+')}, {args.device}, {args.dtype}, batch {args.batch} x C {args.channels}"
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Gaunt tensor product vs e3nn on the same paths (exponent fit over L >= {args.fit_lmin})")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
