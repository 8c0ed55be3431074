"""Memory honesty: estimate the peak memory of a run *before* it starts, and stop with an error that
says how much is needed and what to change when it will not fit.

:func:`estimate_peak_memory` is a per-model formula, linear in what drives the activations:

- ``"se3hyena"`` / ``"eq_transformer"`` (long context): bytes = itemsize * depth * B * N *
  (a * Cs + b * Cv + c) (+ B * heads * N^2 * itemsize * 3 for attention when the N x N score
  matrix is materialised: ``attention_matrix=True``, the "math" SDPA path). a, b, c were fitted to
  the CPU profiler's peak (``equiscale.bench.common.peak_memory``) of forward + backward on
  ``N = 1024 .. 4096`` tokens; inference (``training=False``) keeps ~22% (hyena) / ~37% (attention).
- ``"e2former"`` (large systems, energy + forces, second derivatives in training):
  bytes = itemsize * layers * E * C * (L+1)^2 * (117 + 43 L), E the number of edges.

Every estimate is multiplied by :data:`SAFETY` (1.5) and adds the parameters, their gradients and
two Adam moments, so it is an upper bound of the measured peak (tested: between 1x and 2x of the
measurement on sizes other than the fitted ones). It counts tensors only; the CUDA caching
allocator adds fragmentation on top, which :func:`check_memory` leaves room for (``fraction``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "MemoryBudgetError",
    "SAFETY",
    "available_memory",
    "check_memory",
    "estimate_peak_memory",
    "format_bytes",
]

SAFETY = 1.5

# floats per token per layer (training: forward + backward), fitted on the CPU (float32, 2026-11):
#   (per scalar channel, per vector channel, constant), and the inference fraction.
_TOKEN_MODELS: dict[str, tuple[float, float, float, float]] = {
    "se3hyena": (252.0, 1263.0, 1784.0, 0.22),
    "eq_transformer": (85.0, 330.0, 440.0, 0.37),
}


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
        a, b, c, infer = _TOKEN_MODELS[model]
        per_token = a * scalar_channels + b * vector_channels + c
        act = size * depth * batch * tokens * per_token * (1.0 if training else infer)
        if model == "eq_transformer" and attention_matrix:
            act += size * depth * batch * heads * tokens**2 * (3 if training else 1)
    elif model == "e2former":
        act = size * layers * edges * channels * (lmax + 1) ** 2 * (117 + 43 * lmax)
        act *= 1.0 if training else 0.3
    else:
        raise ValueError(f"model must be one of {sorted([*_TOKEN_MODELS, 'e2former'])}, got {model!r}")
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
    scale = budget / max(need, 1)
    hints = []
    if model in _TOKEN_MODELS:
        tokens, batch = sizes.get("tokens", 0), sizes.get("batch", 1)
        quadratic = model == "eq_transformer" and sizes.get("attention_matrix", False)
        fit_tokens = int(tokens * (scale**0.5 if quadratic else scale))
        hints.append(f"tokens (sequence length) {tokens} -> at most ~{fit_tokens}")
        if batch > 1:
            hints.append(f"batch {batch} -> at most ~{max(int(batch * scale), 0)}")
        hints.append("fewer layers (depth) or channels")
        hints.append("bf16 autocast (about half the activation memory)")
        if model == "eq_transformer":
            hints.append("the SE(3)-Hyena model (O(N log N), no N x N matrix)")
        else:
            hints.append("checkpoint_mixer=True (recompute the mixer in backward)")
    else:
        edges = sizes.get("edges", 0)
        hints.append(
            f"edges {edges} -> at most ~{int(edges * scale)} (smaller cutoff, fewer atoms per batch)"
        )
        hints.append("fewer layers, channels or a lower lmax")
    raise MemoryBudgetError(
        f"{model} needs about {format_bytes(need)} at peak (estimate, {sizes}) but only "
        f"{format_bytes(budget)} of {format_bytes(free)} free on {torch.device(device)} may be used "
        f"(fraction={fraction}); change: " + "; ".join(hints)
    )
