"""Shared benchmark plumbing: timing, peak memory, environment, atomic JSON records.

Timing rule (DESIGN.md): warm up, then the median of many repeats; CUDA is synchronised around
every repeat. Peak memory on CUDA is ``torch.cuda.max_memory_allocated``; on the CPU it is the
peak of bytes held by torch tensors, replayed from ``torch.profiler``'s per-op self allocations
(``profile_memory``): tensors only, not Python objects; a transient inside a single op is missed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from equiscale.provenance import atomic_write_bytes, environment, write_record

__all__ = [
    "time_fn",
    "peak_memory",
    "environment",
    "write_record",
    "check_bench_args",
    "fit_exponent",
    "device_slug",
    "atomic_write_bytes",
]


def _sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Callable[[], Any], *, warmup: int = 3, repeats: int = 10, device: str = "cpu"
) -> dict[str, float]:
    """Median, 25th and 75th percentile wall time of ``fn()`` in milliseconds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()

    def q(p: float) -> float:
        return times[min(len(times) - 1, max(0, round(p * (len(times) - 1))))]

    return {"median_ms": q(0.5), "p25_ms": q(0.25), "p75_ms": q(0.75), "repeats": repeats}


def peak_memory(fn: Callable[[], Any], device: str = "cpu") -> int | None:
    """Peak bytes allocated by torch while running ``fn()`` once (above what was live before)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - before)
    if dev.type == "cpu":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        # each op's *self* net allocation, in start order (an op's total would count its
        # children's allocations again); memory allocated and freed inside one op is not seen
        live, peak = 0, 0
        for e in sorted(prof.events(), key=lambda e: e.time_range.start):
            live += getattr(e, "self_cpu_memory_usage", 0) or 0
            peak = max(peak, live)
        return int(peak)
    return None


def device_slug(device: str) -> str:
    """'cpu' or 'cuda-<gpu name>' for file names."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return "cuda-" + torch.cuda.get_device_name(dev).replace(" ", "_").lower()
    return dev.type


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        raise ValueError("fit_exponent needs at least two positive points")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    return sxy / sxx


def check_bench_args(
    args: Any,
    *,
    at_least_one: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    lists_at_least_one: tuple[str, ...] = (),
) -> None:
    """Reject absurd benchmark options before anything runs or is written: counts that must be
    >= 1 or >= 0, every entry of list options >= 1, and a ``--device`` this machine has. Errors name
    the option (``ValueError``, a one-line message from the command line)."""
    for name in at_least_one:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in non_negative:
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    for name in lists_at_least_one:
        values = getattr(args, name)
        if not values or min(values) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must list values >= 1, got {values}")
    device = getattr(args, "device", "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a device name (cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda[:k], got {device!r}")
