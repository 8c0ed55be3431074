"""Mixed precision: every model under ``torch.autocast`` (bfloat16 and float16 on the CPU, the same
on CUDA): it runs, its outputs are finite, and its equivariance error is measured beside the
float32 one (``equiscale.testing.equivariance_error``, relative max-norm, same inputs and seeds).

Operators that must stay in float32 do so under autocast (see the tests):
``fft_conv`` & co. compute half-precision inputs in float32 (CPU FFTs have no half precision)
and cast back; ``pca_frames`` (frame averaging) works in float64; neighbour lists in float64;
``Wigner6jConv`` keeps the geometry (solid harmonics, powers of |r|) in pos's dtype while its
matrix products follow autocast; the E2Former attention softmax and its RMS norm run in float32
(in float16 the norm's 1/sqrt overflowed in backward: NaN forces before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from equiscale.testing import equivariance_error

__all__ = ["AUTOCAST_MODELS", "autocast_equivariance"]


def _small(name: str) -> torch.nn.Module:
    from reliability_catalogue import common as C

    builders: dict[str, Callable[[], torch.nn.Module]] = {
        "EGNN": C._egnn,
        "SE3HyenaNet": C._hyena,
        "EquivariantTransformer": C._transformer,
        "FrameAveraging": C._frame_avg,
        "E2Former": C._e2former,
        "GauntNet": C._gauntnet,
    }
    torch.manual_seed(0)
    return builders[name]().eval()


def _call(
    name: str, model: torch.nn.Module, ctx: Callable[[], Any]
) -> tuple[Callable[..., Any], list[Tensor], list[Any], list[Any], dict[str, bool]]:
    """(fn, inputs, in_types, out_types, checks) of the model, with ``ctx()`` around the call."""
    g = torch.Generator().manual_seed(1)
    if name == "EGNN":
        loc, vel = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
        charges = torch.sign(torch.randn(2, 5, generator=g))

        def fn(x: Tensor, v: Tensor) -> Tensor:
            with ctx():
                return model({"loc": x, "vel": v, "charges": charges}).float()

        return fn, [loc, vel], ["position", "vector"], ["position"], {"reflection": True, "translation": True}
    if name in ("SE3HyenaNet", "EquivariantTransformer", "FrameAveraging"):
        pos = torch.randn(2, 12, 3, generator=g)
        ttype = torch.nn.functional.one_hot(torch.arange(12) % 3, 3).float().expand(2, 12, 3)

        def fn(x: Tensor) -> Tensor:
            with ctx():
                return model({"pos": x, "token_type": ttype}).float()

        reflection = name != "SE3HyenaNet"  # parity="se3": cross products give pseudovectors
        return fn, [pos], ["position"], ["position"], {"reflection": reflection, "translation": True}
    pos = 1.5 * torch.randn(6, 3, generator=g)
    z = torch.arange(6) % 3 + 1

    def fn(x: Tensor) -> tuple[Tensor, Tensor]:
        with ctx():
            out = model({"pos": x, "z": z})
        return out["energy"].float(), out["forces"].float()

    return fn, [pos], ["position"], ["scalar", "vector"], {"reflection": True, "translation": True}


AUTOCAST_MODELS = ("EGNN", "SE3HyenaNet", "EquivariantTransformer", "FrameAveraging", "E2Former", "GauntNet")


def autocast_equivariance(
    name: str, dtype: torch.dtype = torch.bfloat16, device: str = "cpu", trials: int = 2
) -> dict[str, Any]:
    """Equivariance errors of model ``name`` in float32 and under ``autocast(dtype)``.

    Returns ``{"float32": {check: err}, "autocast": {check: err}, "finite": bool,
    "max_abs_change": float}`` (the last: largest |autocast output - float32 output| relative to
    the float32 output's max).
    """
    model = _small(name).to(device)
    results: dict[str, Any] = {"model": name, "autocast_dtype": str(dtype).replace("torch.", "")}
    outputs = {}
    for label, ctx in (
        ("float32", contextlib.nullcontext),
        ("autocast", lambda: torch.autocast(torch.device(device).type, dtype=dtype)),
    ):
        fn, inputs, in_types, out_types, checks = _call(name, model, ctx)
        inputs = [x.to(device) for x in inputs]
        out = fn(*inputs)
        outputs[label] = out if isinstance(out, tuple) else (out,)
        results[label] = equivariance_error(
            fn, inputs, in_types, out_types, trials=trials, seed=0, dtype=None, **checks
        )
    finite = all(bool(torch.isfinite(t).all()) for t in outputs["autocast"])
    change = max(
        float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-30))
        for a, b in zip(outputs["autocast"], outputs["float32"])
    )
    results["finite"] = finite
    results["max_rel_change"] = change
    return results
