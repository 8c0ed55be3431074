"""Equivariant attention and transformer: reference equality, E(3) and permutation equivariance."""

from __future__ import annotations

import pytest
import torch

from equiscale.models.equivariant_transformer import EquivariantTransformer
from equiscale.nn.attention import EquivariantAttention, equivariant_attention_reference
from equiscale.testing import assert_equivariant

F64 = torch.float64


@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_reference(causal: bool) -> None:
    torch.manual_seed(0)
    att = EquivariantAttention(8, 4, heads=2, causal=causal).double()
    s = torch.randn(2, 9, 8, dtype=F64)
    v = torch.randn(2, 9, 3, 4, dtype=F64)  # channels last
    s_out, v_out = att(s, v)
    qs, ks, ws = att.scalar_in(s).split(8, dim=-1)
    qv, kv, wv = att.vector_in(v).split(4, dim=-1)
    outs, outv = [], []
    for h in range(2):
        sl, vl = slice(4 * h, 4 * h + 4), slice(2 * h, 2 * h + 2)
        a, b = equivariant_attention_reference(
            qs[..., sl], ks[..., sl], ws[..., sl], qv[..., vl], kv[..., vl], wv[..., vl], causal
        )
        outs.append(a)
        outv.append(b)
    ref_s = att.scalar_out(torch.cat(outs, -1))
    ref_v = att.vector_out(torch.cat(outv, -1))
    assert (s_out - ref_s).abs().max() < 1e-12
    assert (v_out - ref_v).abs().max() < 1e-12


def test_attention_e3_and_permutation_equivariant() -> None:
    torch.manual_seed(1)
    att = EquivariantAttention(8, 4, heads=2).double()
    s = torch.randn(2, 9, 8, dtype=F64)
    v = torch.randn(2, 9, 4, 3, dtype=F64)

    def fn(s, v):
        s_out, v_out = att(s, v.transpose(-1, -2))
        return s_out, v_out.transpose(-1, -2)

    assert_equivariant(
        fn,
        [s, v],
        ["scalar", "vector"],
        ["scalar", "vector"],
        reflection=True,
        permutation=True,
        node_dims=[1, 1],
        out_node_dims=[1, 1],
    )


def test_transformer_equivariant() -> None:
    torch.manual_seed(2)
    net = EquivariantTransformer(8, 4, depth=2, heads=2, causal=False, vector_in=1, scalar_in=1).double()
    loc = torch.randn(3, 5, 3, dtype=F64)
    vel = torch.randn(3, 5, 3, dtype=F64)
    q = torch.randn(3, 5, dtype=F64).sign()
    fn = lambda x, u, c: net({"loc": x, "vel": u, "charges": c})
    assert_equivariant(
        fn,
        [loc, vel, q],
        ["position", "vector", "scalar"],
        ["position"],
        reflection=True,
        translation=True,
        permutation=True,
        node_dims=[1, 1, 1],
        out_node_dims=[1],
    )
    causal = EquivariantTransformer(8, 4, depth=2, heads=2, causal=True).double()
    pos = torch.randn(2, 10, 3, dtype=F64)
    tt = torch.randn(2, 10, 3, dtype=F64)
    assert_equivariant(
        lambda p, t: causal({"pos": p, "token_type": t}),
        [pos, tt],
        ["position", "scalar"],
        ["position"],
        reflection=True,
        translation=True,
    )


def test_bad_heads() -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        EquivariantAttention(8, 3, heads=2)


def test_rope_is_relative_e3_equivariant_and_order_aware() -> None:
    from equiscale.nn.attention import rotary_embedding

    gen = torch.Generator().manual_seed(5)
    q = torch.randn(1, 7, 2, 6, dtype=F64, generator=gen)  # [B, N, H, d]
    k = torch.randn(1, 7, 2, 6, dtype=F64, generator=gen)
    pos = torch.arange(7)
    logits = torch.einsum("bihd,bjhd->bhij", rotary_embedding(q, pos), rotary_embedding(k, pos))
    shifted = torch.einsum("bihd,bjhd->bhij", rotary_embedding(q, pos + 11), rotary_embedding(k, pos + 11))
    assert (logits - shifted).abs().max() < 1e-12  # depends on i - j only
    plain = torch.einsum("bihd,bjhd->bhij", q, k)
    assert (logits - plain).abs().max() > 1e-3
    torch.testing.assert_close(logits.diagonal(dim1=-2, dim2=-1), plain.diagonal(dim1=-2, dim2=-1))
    torch.manual_seed(6)
    net = EquivariantTransformer(8, 4, depth=2, heads=2, causal=False, rope=True).double()
    pos3 = torch.randn(2, 10, 3, dtype=F64)
    tt = torch.randn(2, 10, 3, dtype=F64)
    fn = lambda p, t: net({"pos": p, "token_type": t})
    errs = assert_equivariant(
        fn, [pos3, tt], ["position", "scalar"], ["position"], reflection=True, translation=True
    )
    assert max(errs.values()) < 1e-9
    # order-aware: permuting the context tokens (the query stays last) changes the prediction
    perm = torch.cat([torch.randperm(9, generator=gen), torch.tensor([9])])
    assert (fn(pos3[:, perm], tt[:, perm]) - fn(pos3, tt)).abs().max() > 1e-6
    no_rope = EquivariantTransformer(8, 4, depth=2, heads=2, causal=False).double()
    f0 = lambda p, t: no_rope({"pos": p, "token_type": t})
    assert (f0(pos3[:, perm], tt[:, perm]) - f0(pos3, tt)).abs().max() < 1e-12
