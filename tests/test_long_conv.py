"""fft_conv / fft_cross_conv / fft_dot_conv against their direct O(N^2) sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equiscale.ops.long_conv import (
    fft_conv,
    fft_conv_reference,
    fft_cross_conv,
    fft_cross_conv_reference,
    fft_cross_dot_conv,
    fft_dot_conv,
    fft_dot_conv_reference,
    next_fast_size,
)
from equiscale.testing import random_rotation

F64 = torch.float64


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n", [1, 7, 64, 129])
@pytest.mark.parametrize("causal", [True, False])
def test_fft_conv_matches_direct_sum_float64(n: int, causal: bool) -> None:
    g = gen(n)
    u = torch.randn(2, 3, n, 5, dtype=F64, generator=g)
    for m in [n] if causal else [n, 2 * n - 1, 3]:
        h = torch.randn(m, 5, dtype=F64, generator=g)
        y = fft_conv(u, h, causal=causal)
        assert y.shape == (2, 3, n, 5)
        assert rel(y, fft_conv_reference(u, h, causal=causal)) < 1e-10


@pytest.mark.parametrize("n", [1, 7, 64, 129])
@pytest.mark.parametrize("causal", [True, False])
def test_cross_and_dot_conv_match_direct_sum_float64(n: int, causal: bool) -> None:
    g = gen(100 + n)
    q = torch.randn(2, n, 3, dtype=F64, generator=g)
    k = torch.randn(4, 1, n, 3, dtype=F64, generator=g)  # batch dims broadcast
    y = fft_cross_conv(q, k, causal=causal)
    assert y.shape == (4, 2, n, 3)
    assert rel(y, fft_cross_conv_reference(q, k, causal=causal)) < 1e-10
    z = fft_dot_conv(q, k, causal=causal)
    assert z.shape == (4, 2, n)
    assert rel(z, fft_dot_conv_reference(q, k, causal=causal)) < 1e-10


def test_reference_is_the_textbook_sum() -> None:
    """The references themselves against explicit loops (and numpy's convolve)."""
    g = gen(1)
    n = 6
    q = torch.randn(n, 3, dtype=F64, generator=g)
    k = torch.randn(n, 3, dtype=F64, generator=g)
    h = torch.randn(n, 1, dtype=F64, generator=g)
    loop = torch.stack(
        [
            sum((torch.linalg.cross(q[j], k[i - j]) for j in range(i + 1)), torch.zeros(3, dtype=F64))
            for i in range(n)
        ]
    )
    assert rel(fft_cross_conv_reference(q, k), loop) < 1e-14
    dots = torch.stack([sum(q[j] @ k[i - j] for j in range(i + 1)) for i in range(n)])
    assert rel(fft_dot_conv_reference(q, k), dots) < 1e-14
    full = np.convolve(q[:, 0].numpy(), h[:, 0].numpy())
    assert np.abs(fft_conv_reference(q[:, :1], h)[:, 0].numpy() - full[:n]).max() < 1e-13
    same = np.convolve(q[:, 0].numpy(), h[:, 0].numpy(), mode="same")
    assert np.abs(fft_conv(q[:, :1], h, causal=False)[:, 0].numpy() - same).max() < 1e-13


def test_token_axis_and_channel_broadcast() -> None:
    """Vector channels: u [B, N, C, 3] with dim=-3 and one filter per channel h [N, C, 1]."""
    g = gen(2)
    b, n, c = 2, 33, 4
    v = torch.randn(b, n, c, 3, dtype=F64, generator=g)
    h = torch.randn(n, c, 1, dtype=F64, generator=g)
    y = fft_conv(v, h, dim=-3)
    assert rel(y, fft_conv_reference(v, h, dim=-3)) < 1e-10
    # the same as moving the axes by hand
    alt = fft_conv(v.reshape(b, n, c * 3), h.expand(n, c, 3).reshape(n, c * 3))
    assert rel(y.reshape(b, n, c * 3), alt) < 1e-12
    k = torch.randn(n, c, 3, dtype=F64, generator=g)
    assert rel(fft_cross_conv(v, k, dim=-3), fft_cross_conv_reference(v, k, dim=-3)) < 1e-10
    assert rel(fft_dot_conv(v, k, dim=-3), fft_dot_conv_reference(v, k, dim=-3)) < 1e-10


def test_no_wrap_around() -> None:
    """An impulse at the last token must not leak into earlier outputs (2N padding)."""
    n = 16
    u = torch.zeros(n, 1, dtype=F64)
    u[-1] = 1.0
    h = torch.ones(n, 1, dtype=F64)
    y = fft_conv(u, h)
    assert y[:-1].abs().max() < 1e-14
    assert abs(y[-1, 0].item() - 1.0) < 1e-14


def test_float32_budget() -> None:
    """float32: max|y - y_ref| <= 1e-5 max|y_ref| (stated in the module docstring)."""
    g = gen(3)
    n = 4096
    u = torch.randn(2, n, 4, dtype=F64, generator=g)
    h = torch.randn(n, 4, dtype=F64, generator=g) * torch.exp(-3 * torch.arange(n) / n)[:, None]
    assert rel(fft_conv(u.float(), h.float()).double(), fft_conv(u, h)) < 1e-5
    q = torch.randn(2, n, 3, dtype=F64, generator=g)
    k = torch.randn(2, n, 3, dtype=F64, generator=g)
    assert rel(fft_cross_conv(q.float(), k.float()).double(), fft_cross_conv(q, k)) < 1e-5
    assert (
        rel(fft_dot_conv(q.float(), k.float(), causal=False).double(), fft_dot_conv(q, k, causal=False))
        < 1e-5
    )
    # the float64 fast path itself is exact against the direct sum at this size (checked at 1024)
    m = 1024
    assert rel(fft_conv(u[:, :m], h[:m]), fft_conv_reference(u[:, :m], h[:m])) < 1e-10


def test_half_precision_inputs_computed_in_float32() -> None:
    u = torch.randn(10, 2)
    h = torch.randn(10, 2)
    y = fft_conv(u.bfloat16(), h.bfloat16())
    assert y.dtype == torch.bfloat16
    assert rel(y.float(), fft_conv(u.bfloat16().float(), h.bfloat16().float())) < 1e-2


def test_gradcheck() -> None:
    g = gen(4)
    u = torch.randn(2, 5, 2, dtype=F64, generator=g, requires_grad=True)
    h = torch.randn(5, 2, dtype=F64, generator=g, requires_grad=True)
    hb = torch.randn(9, 2, dtype=F64, generator=g, requires_grad=True)
    q = torch.randn(5, 3, dtype=F64, generator=g, requires_grad=True)
    k = torch.randn(5, 3, dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(fft_conv, (u, h))
    assert torch.autograd.gradcheck(lambda a, b: fft_conv(a, b, causal=False), (u, hb))
    assert torch.autograd.gradcheck(fft_cross_conv, (q, k))
    assert torch.autograd.gradcheck(lambda a, b: fft_cross_conv(a, b, causal=False), (q, k))
    assert torch.autograd.gradcheck(fft_dot_conv, (q, k))
    assert torch.autograd.gradcheck(lambda a, b: fft_dot_conv(a, b, causal=False), (q, k[:3]))
    assert torch.autograd.gradcheck(lambda a, b: fft_cross_dot_conv(a, b, causal=False), (q, k))
    # broadcasting filters and another token axis
    v = torch.randn(2, 6, 2, 3, dtype=F64, generator=g, requires_grad=True)
    hv = torch.randn(11, 2, 1, dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fft_conv(a, b, causal=False, dim=-3), (v, hv))
    kv = torch.randn(6, 2, 3, dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fft_cross_dot_conv(a, b, dim=-3), (v, kv))
    # backward is differentiable again
    assert torch.autograd.gradgradcheck(fft_conv, (u, h))
    assert torch.autograd.gradgradcheck(fft_cross_conv, (q, k))


def test_channels_last_vector_axis() -> None:
    g = gen(7)
    q = torch.randn(2, 30, 3, 4, dtype=F64, generator=g)  # [B, N, 3, C]
    k = torch.randn(2, 30, 3, 4, dtype=F64, generator=g)
    for causal in (True, False):
        c = fft_cross_conv(q, k, causal, dim=-3, vector_dim=-2)
        ref = fft_cross_conv_reference(q.transpose(-1, -2), k.transpose(-1, -2), causal, dim=-3)
        assert rel(c, ref.transpose(-1, -2)) < 1e-10
        assert rel(c, fft_cross_conv_reference(q, k, causal, dim=-3, vector_dim=-2)) < 1e-10
        d = fft_dot_conv(q, k, causal, dim=-3, vector_dim=-2)
        assert rel(d, fft_dot_conv_reference(q, k, causal, dim=-3, vector_dim=-2)) < 1e-10
        c2, d2 = fft_cross_dot_conv(q, k, causal, dim=-3, vector_dim=-2)
        assert rel(c2, c) < 1e-12 and rel(d2, d) < 1e-12
    qg = q[:, :6].clone().requires_grad_(True)
    kg = k[:, :6].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: fft_cross_dot_conv(a, b, False, dim=-3, vector_dim=-2), (qg, kg)
    )
    with pytest.raises(ValueError, match="after the token axis"):
        fft_cross_conv(q.transpose(1, 2), k.transpose(1, 2), dim=-2, vector_dim=-3)


def test_fused_cross_dot_equals_separate() -> None:
    g = gen(6)
    q = torch.randn(2, 40, 3, 3, dtype=F64, generator=g)
    k = torch.randn(2, 40, 3, 3, dtype=F64, generator=g)
    for causal in (True, False):
        c, d = fft_cross_dot_conv(q, k, causal, dim=-3)
        assert rel(c, fft_cross_conv_reference(q, k, causal, dim=-3)) < 1e-10
        assert rel(d, fft_dot_conv_reference(q, k, causal, dim=-3)) < 1e-10


def test_cross_conv_is_pseudovector_dot_conv_invariant() -> None:
    g = gen(5)
    q = torch.randn(3, 20, 3, dtype=F64, generator=g)
    k = torch.randn(3, 20, 3, dtype=F64, generator=g)
    for reflection in (False, True):
        R = random_rotation(F64, g, reflection=reflection)
        det = torch.det(R).item()
        assert rel(fft_cross_conv(q @ R.T, k @ R.T), det * fft_cross_conv(q, k) @ R.T) < 1e-12
        assert rel(fft_dot_conv(q @ R.T, k @ R.T), fft_dot_conv(q, k)) < 1e-12
    # antisymmetry in the causal mode
    assert rel(fft_cross_conv(q, k), -fft_cross_conv(k, q)) < 1e-12


def test_empty_and_bad_inputs() -> None:
    assert fft_conv(torch.zeros(2, 0, 3), torch.zeros(0, 3)).shape == (2, 0, 3)
    assert fft_cross_conv(torch.zeros(0, 4, 3), torch.zeros(4, 3)).shape == (0, 4, 3)
    assert fft_dot_conv(torch.zeros(2, 0, 3), torch.zeros(0, 3)).shape == (2, 0)
    with pytest.raises(ValueError, match="length N=5"):
        fft_conv(torch.zeros(5, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="vector axis of size 3"):
        fft_cross_conv(torch.zeros(5, 2), torch.zeros(5, 2))
    with pytest.raises(TypeError, match="share a dtype"):
        fft_conv(torch.zeros(5, 2), torch.zeros(5, 2, dtype=F64))
    with pytest.raises(TypeError, match="floating"):
        fft_conv(torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="dim"):
        fft_conv(torch.zeros(5, 2), torch.zeros(5, 2), dim=-1)


def test_next_fast_size() -> None:
    for n in [1, 2, 3, 129, 1000, 16383, 65537]:
        m = next_fast_size(n)
        assert m >= n and m % 2 == 0
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        assert r == 1
        assert all(not _smooth_even(x) for x in range(max(n, 2), m))


def _smooth_even(x: int) -> bool:
    if x % 2:
        return False
    for p in (2, 3, 5, 7):
        while x % p == 0:
            x //= p
    return x == 1


@pytest.mark.parametrize("m_extra", [2, 3, 9])
def test_bidirectional_filter_longer_than_2n_minus_1_backward(m_extra):
    """Filters of length M >= 2N+1 are accepted by the forward; the backward once failed (a negative
    narrow start). Taps beyond lag +-(N-1) get zero gradient; the rest equal the reference's."""
    from equiscale.ops.long_conv import fft_conv, fft_conv_reference, fft_cross_conv

    n = 6
    m = 2 * n - 1 + m_extra
    g = torch.Generator().manual_seed(m_extra)
    u = torch.randn(2, n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(m, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, h: fft_conv(u, h, causal=False), (u, h))
    gu, gh = torch.autograd.grad(fft_conv(u, h, causal=False).square().sum(), (u, h))
    ru, rh = torch.autograd.grad(fft_conv_reference(u, h, causal=False).square().sum(), (u, h))
    torch.testing.assert_close(gu, ru, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gh, rh, rtol=1e-10, atol=1e-10)
    q = torch.randn(n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(m, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k: fft_cross_conv(q, k, causal=False), (q, k))
