"""Memory honesty: estimate the peak memory of a run *before* it starts, and stop with an error that
says how much is needed and what to change when it will not fit.

:func:`estimate_peak_memory` is a per-model formula, linear in what drives the activations, in
units of the dtype's itemsize:

- ``"se3hyena"`` / ``"eq_transformer"`` (long context), one training step (forward + backward):
  fixed + B * N * (t + depth * (a * Cs + b * Cv + c)) (+ B * heads * N^2 * 3 per layer for
  attention when the N x N score matrix is materialised: ``attention_matrix=True``, the "math"
  SDPA path; the flash-style CPU/GPU kernels do not). Inference: fixed + 0.75 * B * N * (t + one
  layer) (activations are freed layer by layer).
- ``"e2former"`` (large systems, energy + forces, second derivatives in training):
  fixed + layers * E * C * (L+1)^2 * (35 + 15 L), E the number of edges.

The coefficients were fitted (2026-11, float32, torch 2.13) to the *resident-set* peak of one step
on the CPU (``equiscale.bench.context.peak_bytes``: VmHWM after - VmRSS before) on 9 shapes per
model (N = 4k .. 25k tokens, 1-3 layers, 4-24 vector and 16-96 scalar channels; the fit lies within
0.76 .. 1.17 of each) and on 200 .. 400 atoms; everything is multiplied by :data:`SAFETY` (1.35)
and the parameters, their gradients and two Adam moments are added. Tested: between 1x and 3x of
the measured peak on shapes that were not fitted (an upper bound, and conservative). Not validated
on CUDA (no GPU here), where allocations count whole (untouched zero pages too) and kernels differ.

Note: ``equiscale.bench.common.peak_memory`` (the torch-profiler sum) over-counted on the CPU
before commit 492f063 (a live 400 MB list read 800 MB; 100 x 4 MB allocated and freed one at a time
read 408 MB); the report cross-checks both methods on such workloads.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "MemoryBudgetError",
    "check_config_memory",
    "SAFETY",
    "available_memory",
    "check_memory",
    "estimate_peak_memory",
    "format_bytes",
]

SAFETY = 1.35

# (fixed floats, floats per token outside the layers, per layer: per scalar channel, per vector
# channel, constant); fitted on the CPU's resident-set peak (module docstring).
_TOKEN_MODELS: dict[str, tuple[float, float, float, float, float]] = {
    "se3hyena": (20 * 2**20, 900.0, 27.0, 47.0, 0.0),
    "eq_transformer": (2 * 2**20, 210.0, 12.0, 60.0, 0.0),
}
_E2FORMER_FIXED = 4 * 2**20


class MemoryBudgetError(MemoryError):
    """A run would not fit: the message says the estimate, what is available and what to change."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def estimate_peak_memory(
    model: str,
    *,
    batch: int = 1,
    tokens: int = 0,
    scalar_channels: int = 64,
    vector_channels: int = 16,
    depth: int = 4,
    heads: int = 4,
    attention_matrix: bool = False,
    edges: int = 0,
    channels: int = 64,
    lmax: int = 2,
    layers: int = 3,
    n_parameters: int = 0,
    dtype: torch.dtype = torch.float32,
    training: bool = True,
) -> int:
    """Upper estimate of the peak bytes of one step (module docstring for the formulas).

    Args:
        model: ``"se3hyena"``, ``"eq_transformer"`` (use ``tokens``, ``batch``, ``scalar_channels``,
            ``vector_channels``, ``depth``, ``heads``, ``attention_matrix``) or ``"e2former"``
            (``edges``, ``channels``, ``lmax``, ``layers``).
        n_parameters: parameters of the model (weights, gradients and two Adam moments are added).
        dtype: the parameter/activation dtype (bf16 autocast: pass ``torch.float32``, an upper bound).
        training: forward + backward (and, for e2former, the force loss's second derivatives).
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
    size = _itemsize(dtype)
    for name, value in (
        ("batch", batch),
        ("tokens", tokens),
        ("scalar_channels", scalar_channels),
        ("vector_channels", vector_channels),
        ("depth", depth),
        ("heads", heads),
        ("edges", edges),
        ("channels", channels),
        ("lmax", lmax),
        ("layers", layers),
        ("n_parameters", n_parameters),
    ):
        _positive(name, value)
    if model in _TOKEN_MODELS:
        fixed, t, a, b, c = _TOKEN_MODELS[model]
        layer = a * scalar_channels + b * vector_channels + c
        if training:
            floats = fixed + batch * tokens * (t + depth * layer)
        else:
            floats = fixed + 0.75 * batch * tokens * (t + layer)
        if model == "eq_transformer" and attention_matrix:
            floats += (depth if training else 1) * batch * heads * tokens**2 * (3 if training else 1)
    elif model == "e2former":
        floats = _E2FORMER_FIXED + layers * edges * channels * (lmax + 1) ** 2 * (35 + 15 * lmax) * (
            1.0 if training else 0.3
        )
    else:
        raise ValueError(f"model must be one of {sorted([*_TOKEN_MODELS, 'e2former'])}, got {model!r}")
    act = size * floats
    params = size * n_parameters * (4 if training else 1)
    return int(SAFETY * act + params)


def available_memory(device: str | torch.device = "cpu") -> int | None:
    """Free bytes on ``device``: CUDA ``mem_get_info``; CPU ``MemAvailable`` of /proc/meminfo."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type == "cpu":
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
    return None


def _largest(model: str, sizes: dict[str, Any], key: str, budget: int) -> int:
    """The largest value of ``sizes[key]`` whose estimate fits in ``budget`` (bisection; 0 if none)."""
    lo, hi = 0, int(sizes.get(key, 0))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_peak_memory(model, **{**sizes, key: mid}) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_memory(
    model: str,
    *,
    device: str | torch.device = "cpu",
    available: int | None = None,
    fraction: float = 0.9,
    **sizes: Any,
) -> int:
    """Raise :class:`MemoryBudgetError` if ``estimate_peak_memory(model, **sizes)`` exceeds
    ``fraction`` of the free memory of ``device`` (or of ``available`` bytes); return the estimate.

    The message gives the estimate, the budget, and the largest token count / batch / edge count
    that would fit at the other settings, with the other knobs (precision, depth, checkpointing).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    need = estimate_peak_memory(model, **sizes)
    free = available if available is not None else available_memory(device)
    if free is None:
        return need
    budget = int(fraction * free)
    if need <= budget:
        return need
    hints = []
    if model in _TOKEN_MODELS:
        tokens, batch = sizes.get("tokens", 0), sizes.get("batch", 1)
        fit_tokens = _largest(model, sizes, "tokens", budget)
        hints.append(f"tokens (sequence length) {tokens} -> at most ~{fit_tokens}")
        if batch > 1:
            hints.append(f"batch {batch} -> at most ~{_largest(model, sizes, 'batch', budget)}")
        hints.append("fewer layers (depth) or channels")
        hints.append("bf16 autocast (about half the activation memory)")
        if model == "eq_transformer":
            hints.append("the SE(3)-Hyena model (O(N log N), no N x N matrix)")
        else:
            hints.append("checkpoint_mixer=True (recompute the mixer in backward)")
    else:
        edges = sizes.get("edges", 0)
        hints.append(
            f"edges {edges} -> at most ~{_largest(model, sizes, 'edges', budget)} (smaller cutoff, "
            "fewer atoms per batch)"
        )
        hints.append("fewer layers, channels or a lower lmax")
    raise MemoryBudgetError(
        f"{model} needs about {format_bytes(need)} at peak (estimate, {sizes}) but only "
        f"{format_bytes(budget)} of {format_bytes(free)} free on {torch.device(device)} may be used "
        f"(fraction={fraction}); change: " + "; ".join(hints)
    )


def _config_device(accelerator: str) -> str:
    import torch as _torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and _torch.cuda.is_available()):
        return "cuda" if _torch.cuda.is_available() else "cpu"
    return "cpu"


#: per-rank activations of a context-parallel SE3HyenaNet step relative to one process holding the
#: same number of tokens (measured: 131.5 MB at 32k tokens per rank against 93.7 MB)
CONTEXT_PARALLEL_OVERHEAD = 1.4


def check_config_memory(cfg: Any, fraction: float = 0.9) -> int | None:
    """Before a training run: estimate one step of ``cfg`` (a :class:`~equiscale.train.TrainConfig`)
    and raise :class:`MemoryBudgetError` if it will not fit (see :func:`check_memory`).

    Covers the long-context models (``se3hyena``, ``eq_transformer``, and ``frame_averaging`` over
    them, whose batch is multiplied by the number of frames) on tasks whose token count is known
    from the config (``recall``: ``data_args.length``; ``nbody``: 5 particles). With
    ``context_parallel = P`` it estimates one rank: ``1.4 x ceil(N / P)`` tokens. Returns the
    estimate, or None where no estimate exists (other models, or systems whose edge count needs
    the data).
    """
    model, margs = cfg.model, dict(cfg.model_args)
    batch = int(cfg.batch_size)
    if model == "frame_averaging":
        frames = (
            1 if margs.get("frames", "all") == "sampled" else (8 if margs.get("group", "e3") == "e3" else 4)
        )
        model, margs, batch = (
            margs.get("backbone", "hyena"),
            dict(margs.get("backbone_args") or {}),
            batch * frames,
        )
    if model not in _TOKEN_MODELS:
        return None
    if cfg.task == "recall":
        tokens = int(cfg.data_args.get("length", 0))
    elif cfg.task == "nbody":
        tokens = 5
    else:
        return None
    cp = int(getattr(cfg, "context_parallel", 1))
    if cp > 1:
        # one rank holds ~1/P of the tokens; the distributed path holds ~1.4x the activations of
        # one process for the same tokens (results/bench_context_parallel_cpu.json)
        tokens = math.ceil(CONTEXT_PARALLEL_OVERHEAD * math.ceil(tokens / cp))
    sizes = {
        "batch": batch,
        "tokens": tokens,
        "scalar_channels": int(margs.get("scalar_channels", 64)),
        "vector_channels": int(margs.get("vector_channels", 16)),
        "depth": int(margs.get("depth", 4)),
    }
    if model == "eq_transformer":
        sizes["heads"] = int(margs.get("heads", 4))
    return check_memory(model, device=_config_device(cfg.accelerator), fraction=fraction, **sizes)
