"""Mixed precision: every model runs under ``torch.autocast`` (bfloat16 on the CPU) with finite
outputs, and its equivariance error under autocast is measured (and bounded) beside float32's.
Operators that must stay in float32 do so under autocast."""

from __future__ import annotations

import pytest
import torch

from reliability_catalogue.precision import AUTOCAST_MODELS, autocast_equivariance

# bf16 keeps 8 bits of mantissa (relative rounding 4e-3, fp16 5e-4); a few roundings are expected.
BF16_BOUND = 0.1
FP32_BOUND = 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", AUTOCAST_MODELS)
def test_model_under_autocast_is_finite_and_nearly_equivariant(name, dtype):
    res = autocast_equivariance(name, dtype, trials=1)
    assert res["finite"], res
    assert max(res["float32"].values()) < FP32_BOUND, res["float32"]
    assert max(res["autocast"].values()) < BF16_BOUND, res["autocast"]
    # autocast changed the numbers (it really ran in half precision) but not by more than its noise
    assert 0 < res["max_rel_change"] < BF16_BOUND, res["max_rel_change"]


def test_long_convs_stay_in_float32_under_autocast():
    from equiscale.ops import fft_conv, fft_conv_reference, fft_cross_dot_conv

    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 64, 4, generator=g)
    h = torch.randn(64, 4, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fft_conv(u.bfloat16(), h)  # bf16 data, float32 filter: accepted under autocast
        c, d = fft_cross_dot_conv(torch.randn(2, 16, 3).bfloat16(), torch.randn(2, 16, 3))
    ref = fft_conv_reference(u.bfloat16().double(), h.double())
    assert y.dtype == torch.bfloat16 and c.dtype == torch.bfloat16 and d.shape == (2, 16)
    # error of one bf16 rounding of the result only: the sum itself ran in float32
    assert float((y.double() - ref).abs().max() / ref.abs().max()) < 8e-3
    with pytest.raises(TypeError, match="dtype"):  # outside autocast mixed dtypes are refused
        fft_conv(u.bfloat16(), h)


def test_wigner6j_conv_runs_under_autocast_within_bf16_error():
    from equiscale.ops import Wigner6jConv

    g = torch.Generator().manual_seed(0)
    h, pos = torch.randn(5, 4, 2, generator=g), 2 * torch.randn(5, 3, generator=g)
    ei = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    conv = Wigner6jConv(1, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(h.bfloat16(), pos, ei, torch.ones(5).bfloat16())
    ref = conv.reference(h.bfloat16().double(), pos.double(), ei, torch.ones(5, dtype=torch.float64))
    assert out.dtype == torch.float32  # geometry (solid harmonics, |r|^l) in float32
    # the neighbour sums and contractions are autocast matmuls (bf16): a few bf16 roundings
    assert float((out.double() - ref).abs().max() / ref.abs().max()) < 2e-2


def test_frames_and_gaunt_bf16_budget():
    from equiscale.models.frame_averaging import pca_frames
    from equiscale.ops.gaunt import GauntTensorProduct, gaunt_reference

    with torch.autocast("cpu", dtype=torch.bfloat16):
        frames, _, _ = pca_frames(torch.randn(2, 7, 3))
    assert frames.dtype == torch.float64
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 9, 4, generator=g).bfloat16(), torch.randn(8, 9, 4, generator=g).bfloat16()
    for backend in ("dense", "fourier", "grid"):
        out = GauntTensorProduct(2, 2, 2, backend=backend)(x, y)
        ref = gaunt_reference(x.double(), y.double(), lmax_out=2)
        # ops/gaunt.py: "bfloat16 < 2e-2"
        assert out.dtype == torch.bfloat16
        assert float((out.double() - ref).abs().max() / ref.abs().max()) < 2e-2, backend
