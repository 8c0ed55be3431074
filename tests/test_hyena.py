"""SE(3)-Hyena operator and network: equivariance, parity, gating, causality, order."""

from __future__ import annotations

import pytest
import torch

from equiscale.models.se3_hyena import HyenaNet, SE3HyenaNet, centre_positions
from equiscale.nn.hyena import (
    HyenaOperator,
    ImplicitFilter,
    SE3HyenaBlock,
    SE3HyenaOperator,
    ShortConv,
)
from equiscale.testing import assert_equivariant, equivariance_error

F64 = torch.float64


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def streams(b: int = 2, n: int = 13, cs: int = 8, cv: int = 4, seed: int = 0):
    """Scalars [b, n, cs] and vectors [b, n, cv, 3] (vectors last, as the testing helpers expect)."""
    gen = g(seed)
    return (
        torch.randn(b, n, cs, dtype=F64, generator=gen),
        torch.randn(b, n, cv, 3, dtype=F64, generator=gen),
    )


def last(mod):
    """Wrap a module on channels-last vector features [..., 3, C] to take and give [..., C, 3]."""

    def fn(s, v):
        s_out, v_out = mod(s, v.transpose(-1, -2))
        return s_out, v_out.transpose(-1, -2)

    return fn


@pytest.mark.parametrize("causal", [True, False])
def test_operator_rotation_equivariant_se3_not_reflection(causal: bool) -> None:
    torch.manual_seed(0)
    op = SE3HyenaOperator(8, 4, causal=causal, parity="se3").double()
    s, v = streams()
    assert_equivariant(last(op), [s, v], ["scalar", "vector"], ["scalar", "vector"])
    # the cross products make it a pseudovector mixture: reflections are NOT a symmetry
    err = equivariance_error(
        last(op), [s, v], ["scalar", "vector"], ["scalar", "vector"], rotation=False, reflection=True
    )
    assert err["reflection"] > 1e-2


@pytest.mark.parametrize("causal", [True, False])
def test_operator_e3_option_is_reflection_equivariant(causal: bool) -> None:
    torch.manual_seed(1)
    op = SE3HyenaOperator(8, 4, causal=causal, parity="e3").double()
    s, v = streams(seed=1)
    assert_equivariant(last(op), [s, v], ["scalar", "vector"], ["scalar", "vector"], reflection=True)


def test_gate_really_gates() -> None:
    """With the invariant gate g_k = 0 the filtered vector context z vanishes (and with the
    cross-product paths switched off, so does the vector output); with g_k != 0 it does not."""
    torch.manual_seed(2)
    op = SE3HyenaOperator(6, 3).double()
    s, v = streams(cs=6, cv=3, seed=2)
    cv = 3
    v = v.transpose(-1, -2)  # [..., 3, Cv]
    with torch.no_grad():
        op.vector_out.weight[cv:] = 0.0  # keep only v_1 = g_q * z in the vector output
    _, v_on = op(s, v)
    assert v_on.abs().max() > 1e-3
    with torch.no_grad():
        op.gate_in.weight[cv : 2 * cv] = 0.0  # g_k rows
        op.gate_in.bias[cv : 2 * cv] = 0.0
    _, v_off = op(s, v)
    assert v_off.abs().max() == 0.0


def test_normalised_convolution_broadcasts_one_token_exactly() -> None:
    """With one dominant weight the normalised convolution returns that token's value vector at
    every position it reaches (bidirectional: all), whatever the filter."""
    torch.manual_seed(13)
    cv = 3
    op = SE3HyenaOperator(6, cv, causal=False).double()
    s, v = streams(b=1, n=9, cs=6, cv=cv, seed=13)
    v = v.transpose(-1, -2)
    with torch.no_grad():
        op.gate_in.weight[2 * cv :] = 0.0
        op.gate_in.bias[2 * cv :] = -1e3  # w = e^-10 everywhere ...
        op.vector_out.weight.zero_()
        op.vector_out.weight[3 * cv :, :] = torch.eye(cv, dtype=F64)  # output = m
    s_in = s.clone()
    s_in[0, 4] += 100.0  # ... but token 4 gets a large weight through its scalar
    with torch.no_grad():
        op.gate_in.weight[2 * cv :, :6] = 0.0
        op.gate_in.weight[2 * cv :, 0] = 10.0
        op.gate_in.bias[2 * cv :] = -10.0 * s_in[0, :, 0].max() + 50.0 - 1e3 * 0
    # w_j = exp(10 tanh((10 s_j0 + b) / 10)): saturated high only at token 4
    _, out = op(s_in, v)
    inv = torch.cat([s_in, (v * op.dot_proj(v)).sum(-2)], dim=-1)
    _, vp = op._project(inv, v)
    target = vp[0, 4, :, 2 * cv : 3 * cv]  # v_v of token 4
    assert (out[0] - target).abs().max() < 1e-6 * target.abs().max()


def test_block_and_float32_equivariance() -> None:
    torch.manual_seed(3)
    blk = SE3HyenaBlock(8, 4, causal=False)
    s, v = streams(seed=3)
    errs = equivariance_error(
        last(blk), [s.float(), v.float()], ["scalar", "vector"], ["scalar", "vector"], dtype=None
    )
    assert errs["rotation"] < 1e-4  # float32 budget
    assert_equivariant(last(blk.double()), [s, v], ["scalar", "vector"], ["scalar", "vector"])


def _recall_fn(model):
    return lambda pos, tt: model({"pos": pos, "token_type": tt})


@pytest.mark.parametrize("causal", [True, False])
def test_net_rotation_translation_equivariant(causal: bool) -> None:
    torch.manual_seed(4)
    net = SE3HyenaNet(8, 4, depth=2, scalar_in=3, causal=causal).double()
    gen = g(4)
    pos = torch.randn(2, 11, 3, dtype=F64, generator=gen)
    tt = torch.randn(2, 11, 3, dtype=F64, generator=gen)
    errs = assert_equivariant(
        _recall_fn(net), [pos, tt], ["position", "scalar"], ["position"], translation=True
    )
    assert max(errs.values()) < 1e-9
    # per-token scalars invariant and vectors equivariant, several output channels
    net2 = SE3HyenaNet(8, 4, depth=2, scalar_in=3, scalar_out=2, vector_out=3, causal=causal).double()
    fn = lambda p, t: net2.forward_tokens(p, None, t)
    assert_equivariant(
        fn, [pos, tt], ["position", "scalar"], ["scalar", "vector", "position"], translation=True
    )


def test_deep_causal_net_stays_equivariant() -> None:
    """Depth 4, 64 tokens, causal: the first token (centred position exactly 0) must not amplify
    rounding noise (VectorRMSNorm's eps)."""
    torch.manual_seed(15)
    net = SE3HyenaNet(16, 8, depth=4, causal=True, parity="e3", scalar_out=2, vector_out=2).double()
    gen = g(15)
    pos = torch.randn(2, 64, 3, dtype=F64, generator=gen)
    tt = torch.randn(2, 64, 3, dtype=F64, generator=gen)
    fn = lambda p, t: net.forward_tokens(p, None, t)
    assert_equivariant(
        fn,
        [pos, tt],
        ["position", "scalar"],
        ["scalar", "vector", "position"],
        translation=True,
        reflection=True,
    )


def test_net_e3_reflection_and_nbody_layout() -> None:
    torch.manual_seed(5)
    net = SE3HyenaNet(8, 4, depth=2, scalar_in=1, vector_in=1, causal=False, parity="e3").double()
    gen = g(5)
    loc = torch.randn(3, 5, 3, dtype=F64, generator=gen)
    vel = torch.randn(3, 5, 3, dtype=F64, generator=gen)
    q = torch.randn(3, 5, dtype=F64, generator=gen).sign()
    fn = lambda x, u, c: net({"loc": x, "vel": u, "charges": c})
    assert fn(loc, vel, q).shape == (3, 5, 3)
    assert_equivariant(
        fn, [loc, vel, q], ["position", "vector", "scalar"], ["position"], reflection=True, translation=True
    )
    se3 = SE3HyenaNet(8, 4, depth=2, scalar_in=1, vector_in=1, causal=False).double()
    fn = lambda x, u, c: se3({"loc": x, "vel": u, "charges": c})
    err = equivariance_error(
        fn, [loc, vel, q], ["position", "vector", "scalar"], ["position"], rotation=False, reflection=True
    )
    assert err["reflection"] > 1e-3


def test_causal_output_ignores_later_tokens() -> None:
    torch.manual_seed(6)
    net = SE3HyenaNet(8, 4, depth=2, scalar_in=3, vector_out=1, scalar_out=1, causal=True).double()
    gen = g(6)
    pos = torch.randn(1, 12, 3, dtype=F64, generator=gen)
    tt = torch.randn(1, 12, 3, dtype=F64, generator=gen)
    s0, v0, _ = net.forward_tokens(pos, None, tt)
    pos2, tt2 = pos.clone(), tt.clone()
    pos2[:, 8:] += 5.0
    tt2[:, 8:] -= 1.0
    s1, v1, _ = net.forward_tokens(pos2, None, tt2)
    # up to rounding: the FFT's rounding errors spread over all outputs (~1e-16 of the largest)
    tol = 1e-10 * max(s0.abs().max().item(), v0.abs().max().item())
    assert (s1[:, :8] - s0[:, :8]).abs().max() < tol
    assert (v1[:, :8] - v0[:, :8]).abs().max() < tol
    assert (v1[:, 8:] - v0[:, 8:]).abs().max() > 1e-3


def test_bidirectional_sees_every_token_and_order_matters() -> None:
    """Documented: a sequence model. Bidirectional: the first output depends on the last token.
    Not permutation-equivariant, not cyclic-shift-equivariant (errors are O(1))."""
    torch.manual_seed(7)
    net = SE3HyenaNet(8, 4, depth=2, scalar_in=3, scalar_out=1, causal=False).double()
    gen = g(7)
    pos = torch.randn(1, 12, 3, dtype=F64, generator=gen)
    tt = torch.randn(1, 12, 3, dtype=F64, generator=gen)
    s0, v0, _ = net.forward_tokens(pos, None, tt)
    tt2 = tt.clone()
    tt2[:, -1] += 1.0
    s1, _, _ = net.forward_tokens(pos, None, tt2)
    assert (s1[:, 0] - s0[:, 0]).abs().max() > 1e-8  # rounding noise is ~1e-16
    fn = lambda p, t: net.forward_tokens(p, None, t)[:2]
    err = equivariance_error(
        fn,
        [pos, tt],
        ["position", "scalar"],
        ["scalar", "vector"],
        rotation=False,
        permutation=True,
        node_dims=[1, 1],
        out_node_dims=[1, 1],
    )
    assert err["permutation"] > 1e-2
    shift = torch.roll(torch.arange(12), 1)
    s2, v2, _ = net.forward_tokens(pos[:, shift], None, tt[:, shift])
    assert (s2 - s0[:, shift]).abs().max() > 1e-3


def test_centring_is_translation_invariant_and_causal() -> None:
    gen = g(8)
    pos = torch.randn(2, 7, 3, dtype=F64, generator=gen)
    t = torch.randn(3, dtype=F64, generator=gen)
    for causal in (True, False):
        x, c = centre_positions(pos, causal)
        x2, c2 = centre_positions(pos + t, causal)
        assert (x2 - x).abs().max() < 1e-12 and (c2 - c - t).abs().max() < 1e-12
    x, _ = centre_positions(pos, True)
    assert (x[:, 0]).abs().max() == 0  # first token is its own prefix mean


def test_short_conv_matches_conv1d() -> None:
    torch.manual_seed(9)
    for causal in (True, False):
        sc = ShortConv(5, 3, causal).double()
        x = torch.randn(2, 9, 5, dtype=F64)
        y = sc(x)
        w = sc.weight.detach().T.flip(-1)[:, None, :]  # [C, 1, k], conv1d correlates
        xt = x.transpose(1, 2)
        pad = (2, 0) if causal else (1, 1)
        ref = torch.nn.functional.conv1d(torch.nn.functional.pad(xt, pad), w, groups=5)
        assert (y - ref.transpose(1, 2)).abs().max() < 1e-12
        v = torch.randn(2, 9, 3, 5, dtype=F64)
        yv = sc(v, dim=-3)
        assert (yv[..., 1, :] - sc(v[..., 1, :])).abs().max() < 1e-12


def test_implicit_filter_shapes_and_decay() -> None:
    torch.manual_seed(10)
    f = ImplicitFilter(4, causal=True)
    assert f(50).shape == (50, 4)
    fb = ImplicitFilter(4, causal=False)
    assert fb(50).shape == (99, 4)
    assert fb(0).shape == (0, 4) and f(0).shape == (0, 4)
    win = torch.exp(-f.alpha)  # window at the end of the sequence
    assert (win <= 1e-2 ** (1 / 1.5) + 1e-6).all()


def test_plain_hyena_is_not_rotation_equivariant() -> None:
    torch.manual_seed(11)
    net = HyenaNet(8, 4, depth=2).double()
    gen = g(11)
    pos = torch.randn(2, 10, 3, dtype=F64, generator=gen)
    tt = torch.randn(2, 10, 3, dtype=F64, generator=gen)
    err = equivariance_error(
        _recall_fn(net), [pos, tt], ["position", "scalar"], ["position"], translation=True
    )
    assert err["rotation"] > 1e-3
    assert err["translation"] < 1e-9  # positions are centred
    op = HyenaOperator(6)
    assert op(torch.randn(2, 7, 6)).shape == (2, 7, 6)


def test_bad_inputs_and_empty() -> None:
    op = SE3HyenaOperator(4, 2)
    with pytest.raises(ValueError, match="vectors must be"):
        op(torch.randn(1, 3, 4), torch.randn(1, 3, 2, 3))
    with pytest.raises(ValueError, match="parity"):
        SE3HyenaOperator(4, 2, parity="so3")
    s, v = op(torch.randn(1, 0, 4), torch.randn(1, 0, 3, 2))
    assert s.shape == (1, 0, 4) and v.shape == (1, 0, 3, 2)
    net = SE3HyenaNet(8, 2, depth=1)
    with pytest.raises(ValueError, match="batch must hold"):
        net({"x": torch.zeros(1)})


def test_gradients_flow() -> None:
    torch.manual_seed(12)
    net = SE3HyenaNet(8, 4, depth=2)
    pos = torch.randn(2, 16, 3)
    out = net({"pos": pos, "token_type": torch.randn(2, 16, 3)})
    out.pow(2).sum().backward()
    # the last block's scalar MLP output cannot reach a vector-only read-out
    unused = {"blocks.1.mlp_s.weight", "blocks.1.mlp_s.bias"}
    grads = [p.grad for name, p in net.named_parameters() if name not in unused]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0


def test_shuffle_tokens_maps_outputs_back() -> None:
    """Training-time particle shuffling maps outputs back: with depth 0 (no token mixing, only the
    order-free centring) the network is permutation-equivariant, so shuffled == unshuffled."""
    torch.manual_seed(14)
    net = SE3HyenaNet(8, 4, depth=0, scalar_in=1, vector_in=1, causal=False, shuffle_tokens=True).double()
    batch = {
        "loc": torch.randn(2, 5, 3, dtype=F64),
        "vel": torch.randn(2, 5, 3, dtype=F64),
        "charges": torch.randn(2, 5, dtype=F64),
    }
    net.eval()
    ref = net(batch)
    net.train()
    for _ in range(3):
        assert (net(batch) - ref).abs().max() < 1e-12
    assert (ref - batch["loc"]).abs().max() > 1e-3


def test_length_norm_is_the_filters_divided_by_n_and_keeps_equivariance() -> None:
    """``length_norm=True`` equals the plain operator with both summing filters scaled by 1/N
    (exactly), and the network stays E(3)-equivariant with it."""
    torch.manual_seed(7)
    n = 13
    op = SE3HyenaOperator(8, 4, causal=False, parity="e3", length_norm=True).double()
    plain = SE3HyenaOperator(8, 4, causal=False, parity="e3").double()
    plain.load_state_dict(op.state_dict())
    with torch.no_grad():
        for f in (plain.filter_s, plain.filter_v):
            f.mlp[-1].weight /= n
            f.mlp[-1].bias /= n
    s, v = streams(n=n, seed=7)
    vt = v.transpose(-1, -2)
    for a, b in zip(op(s, vt), plain(s, vt)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    unscaled = SE3HyenaOperator(8, 4, causal=False, parity="e3").double()
    unscaled.load_state_dict(op.state_dict())
    assert (unscaled(s, vt)[0] - op(s, vt)[0]).abs().max() > 1e-3  # the option does something
    net = SE3HyenaNet(8, 4, depth=2, scalar_in=3, causal=False, parity="e3", length_norm=True).double()
    gen = g(7)
    pos = torch.randn(2, 11, 3, dtype=F64, generator=gen)
    tt = torch.randn(2, 11, 3, dtype=F64, generator=gen)
    errs = assert_equivariant(
        _recall_fn(net), [pos, tt], ["position", "scalar"], ["position"], translation=True, reflection=True
    )
    assert max(errs.values()) < 1e-9


@pytest.mark.parametrize("n,budget", [(256, 1e-4), (65536, 5e-3)])
def test_float32_normalised_convolution_with_extreme_gate_weights(n, budget) -> None:
    """Gate logits over their whole range (+-10, weights spanning e^20) in float32: every token's
    output stays within ``budget`` (per-token relative) of float64. The float32 FFTs of the
    normalised convolution once gave early tokens ~1e10 instead of O(1)."""
    import copy

    torch.manual_seed(0)
    op = SE3HyenaOperator(4, 2, causal=True)
    with torch.no_grad():
        op.gate_in.weight[4:] *= 1000.0  # the g_w rows: logits saturate at +-10, token by token
    g = torch.Generator().manual_seed(1)
    s = torch.randn(1, n, 4, generator=g, dtype=torch.float64)
    v = torch.randn(1, n, 3, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref_s, ref_v = copy.deepcopy(op).double()(s, v)
        out_s, out_v = copy.deepcopy(op).float()(s.float(), v.float())
    err_v = ((out_v.double() - ref_v).norm(dim=(-2, -1)) / ref_v.norm(dim=(-2, -1))).max()
    err_s = ((out_s.double() - ref_s).norm(dim=-1) / ref_s.norm(dim=-1)).max()
    assert err_v < budget and err_s < budget, (float(err_v), float(err_s))
