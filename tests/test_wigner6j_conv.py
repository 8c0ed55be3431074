"""Wigner6jConv against the edge-wise reference, equivariance, gradients, far-from-origin float32."""

from __future__ import annotations

import pytest
import torch

from equiscale.ops import Wigner6jConv, conv_paths, edge_reference, wigner6j_conv
from equiscale.ops.neighbors import neighbor_list
from equiscale.testing import assert_equivariant


def _graph(n=10, n_edges=50, seed=0, n_struct=1, spread=1.5, dtype=torch.float64):
    """Molecule-like structures: atoms on a jittered 1.5 A lattice (no two closer than ~0.9 A),
    ``n_edges`` random directed pairs within each structure."""
    g = torch.Generator().manual_seed(seed)
    batch = torch.arange(n) * n_struct // n
    cells = torch.randperm(27, generator=g)[:n]
    grid = torch.stack([cells // 9, (cells // 3) % 3, cells % 3], dim=1).to(torch.float64)
    pos = grid * 1.5 + 0.3 * (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5)
    pos = (pos * spread / 1.5 + 20.0 * batch[:, None]).to(dtype)
    src = torch.randint(0, n, (n_edges,), generator=g)
    dst = torch.randint(0, n, (n_edges,), generator=g)
    keep = (src != dst) & (batch[src] == batch[dst])
    return pos, torch.stack([src[keep], dst[keep]]), batch, g


def _rel(a, b):
    return float((a - b).norm() / b.norm())


CASES = [  # (lmax_in, l_filter, lmax_out)
    (0, [0], 0),
    (1, [1], 1),
    (2, [2], 2),
    (2, [0, 1, 2], 3),
    (1, [3], 2),
    (3, [4], 3),
    (1, [5], 4),
    (0, [6], 6),
    (2, [7], 5),
    (1, [8], 7),
    (0, [8], 8),
]


@pytest.mark.parametrize("lmax_in,l_filter,lmax_out", CASES)
@pytest.mark.parametrize("centring", ["structure", "target"])
def test_equals_edge_reference_float64(lmax_in, l_filter, lmax_out, centring):
    pos, ei, batch, g = _graph(n=9, n_edges=40, seed=lmax_in + 10 * l_filter[-1], n_struct=2)
    c = 3
    h = torch.randn(9, (lmax_in + 1) ** 2, c, generator=g, dtype=torch.float64)
    alpha = torch.randn(ei.shape[1], c, generator=g, dtype=torch.float64)
    n_paths = len(conv_paths(lmax_in, l_filter, lmax_out))
    w = torch.randn(n_paths, c, generator=g, dtype=torch.float64)
    kw = dict(lmax_in=lmax_in, l_filter=l_filter, lmax_out=lmax_out, path_weights=w)
    fast = wigner6j_conv(h, pos, ei, alpha, batch=batch, centring=centring, **kw)
    ref = edge_reference(h, pos, ei, alpha, **kw)
    assert ref.abs().max() > 0
    assert _rel(fast, ref) < 1e-10


@pytest.mark.parametrize("normalization", ["integral", "norm"])
def test_scalar_alpha_parity_and_normalizations(normalization):
    pos, ei, batch, g = _graph(n=8, n_edges=40, seed=3)
    h = torch.randn(8, 9, 4, generator=g, dtype=torch.float64)
    alpha = torch.rand(ei.shape[1], generator=g, dtype=torch.float64)
    kw = dict(lmax_in=2, l_filter=[0, 1, 2], lmax_out=2, parity="even", normalization=normalization)
    fast = wigner6j_conv(h, pos, ei, alpha, **kw)
    assert _rel(fast, edge_reference(h, pos, ei, alpha, **kw)) < 1e-10


def test_periodic_shifts_equal_reference():
    pos, ei, batch, g = _graph(n=8, n_edges=40, seed=5)
    shifts = torch.randint(-1, 2, (ei.shape[1], 3), generator=g).to(torch.float64) * 4.0
    h = torch.randn(8, 4, 2, generator=g, dtype=torch.float64)
    alpha = torch.randn(ei.shape[1], 2, generator=g, dtype=torch.float64)
    kw = dict(lmax_in=1, l_filter=[2], lmax_out=2, shifts=shifts)
    ref = edge_reference(h, pos, ei, alpha, **kw)
    for centring in ("structure", "target"):
        assert _rel(wigner6j_conv(h, pos, ei, alpha, centring=centring, **kw), ref) < 1e-10


@pytest.mark.parametrize("centring", ["structure", "target"])
def test_rotation_and_translation_equivariance(centring):
    pos, ei, batch, g = _graph(n=8, n_edges=40, seed=7, n_struct=2)
    h = torch.randn(8, 9, 3, generator=g, dtype=torch.float64)
    alpha = torch.randn(ei.shape[1], 3, generator=g, dtype=torch.float64)
    conv = Wigner6jConv(2, 3, [1, 2, 3], centring=centring, parity="even")
    fn = lambda h_, pos_: conv(h_, pos_, ei, alpha, batch=batch)
    assert_equivariant(
        fn, [h, pos], [("sh", 2), "position"], [("sh", 3)], rotation=True, reflection=True, translation=True
    )


def test_gradcheck():
    pos, ei, batch, g = _graph(n=5, n_edges=14, seed=11)
    h = torch.randn(5, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    alpha = torch.randn(ei.shape[1], 2, generator=g, dtype=torch.float64, requires_grad=True)
    pos = pos.clone().requires_grad_(True)
    w = torch.randn(len(conv_paths(1, [1, 2], 2)), generator=g, dtype=torch.float64, requires_grad=True)
    for centring in ("structure", "target"):

        def fn(h_, p_, a_, w_, centring=centring):
            return wigner6j_conv(
                h_, p_, ei, a_, lmax_in=1, l_filter=[1, 2], lmax_out=2, path_weights=w_, centring=centring
            )

        assert torch.autograd.gradcheck(fn, (h, pos, alpha, w), fast_mode=True)


def test_gradients_equal_reference_gradients():
    pos, ei, batch, g = _graph(n=7, n_edges=30, seed=12)
    h = torch.randn(7, 9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    pos = pos.clone().requires_grad_(True)
    alpha = torch.randn(ei.shape[1], generator=g, dtype=torch.float64)
    kw = dict(lmax_in=2, l_filter=[0, 1, 2], lmax_out=2)
    grads = []
    for f in (wigner6j_conv, edge_reference):
        out = f(h, pos, ei, alpha, **kw)
        grads.append(torch.autograd.grad((out * out).sum(), (h, pos)))
    for a, b in zip(*grads):
        assert _rel(a, b) < 1e-10


def test_far_from_origin_float32():
    """Shifted by 1000 A, float32 stays within 1e-4 of the unshifted float32 (and of float64)."""
    pos, ei, batch, g = _graph(n=12, n_edges=80, seed=13, spread=1.2)
    h = torch.randn(12, 9, 8, generator=g)
    alpha = torch.randn(ei.shape[1], 8, generator=g)
    kw = dict(lmax_in=2, l_filter=[0, 1, 2], lmax_out=2)
    exact = edge_reference(h.double(), pos, ei, alpha.double(), **kw)
    base = wigner6j_conv(h, pos.float(), ei, alpha, **kw)
    shifted_pos = (pos + torch.tensor([1000.0, -1000.0, 1000.0], dtype=torch.float64)).float()
    shifted = wigner6j_conv(h, shifted_pos, ei, alpha, **kw)
    assert _rel(base.double(), exact) < 1e-5
    assert _rel(shifted, base) < 1e-4
    # absolute coordinates (the public E2Former scheme) lose everything there
    absolute = wigner6j_conv(h, shifted_pos, ei, alpha, centring="none", **kw)
    assert _rel(absolute, base) > 1e-2


def test_empty_and_bad_inputs():
    h = torch.zeros(0, 4, 3)
    out = wigner6j_conv(
        h,
        torch.zeros(0, 3),
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(0),
        lmax_in=1,
        l_filter=[1],
        lmax_out=2,
    )
    assert out.shape == (0, 9, 3)
    pos, ei, batch, g = _graph(n=5, n_edges=10)
    h = torch.randn(5, 4, 3, dtype=torch.float64)
    alpha = torch.randn(ei.shape[1], dtype=torch.float64)
    kw = dict(lmax_in=1, l_filter=[1], lmax_out=1)
    with pytest.raises(ValueError, match="h must have shape"):
        wigner6j_conv(h[:, :3], pos, ei, alpha, **kw)
    with pytest.raises(ValueError, match="pos must have shape"):
        wigner6j_conv(h, pos[:4], ei, alpha, **kw)
    with pytest.raises(ValueError, match="alpha must have shape"):
        wigner6j_conv(h, pos, ei, alpha[:-1], **kw)
    with pytest.raises(ValueError, match="edge_index entries"):
        wigner6j_conv(h, pos, ei + 5, alpha, **kw)
    with pytest.raises(ValueError, match="centring"):
        wigner6j_conv(h, pos, ei, alpha, centring="cell", **kw)
    with pytest.raises(ValueError, match="path_weights"):
        wigner6j_conv(h, pos, ei, alpha, path_weights=torch.ones(99, dtype=torch.float64), **kw)
    with pytest.raises(TypeError, match="must share one dtype, got h torch.float64, pos torch.float32"):
        wigner6j_conv(h, pos.float(), ei, alpha, **kw)
    with pytest.raises(TypeError, match="h must be a floating-point tensor"):  # not "int64, got int64"
        wigner6j_conv(h.long(), pos.long(), ei, alpha, **kw)


@pytest.mark.parametrize("lmax", [2, 4, 6])
def test_default_centring_float32_budget_in_a_200A_system(lmax):
    """The default centring ("target") keeps float32 within 1e-5 per atom of the float64 edge
    reference on the same inputs for a 200 A system at any L (the "structure" centring reached ~1
    at 30 A, L = 6)."""
    g = torch.Generator().manual_seed(lmax)
    centres = 200.0 * torch.rand(12, 1, 3, generator=g, dtype=torch.float64)
    pos = (centres + 1.5 * torch.randn(12, 8, 3, generator=g, dtype=torch.float64)).reshape(-1, 3)
    nb = neighbor_list(pos, 4.0)
    h = torch.randn(pos.shape[0], (lmax + 1) ** 2, 3, generator=g, dtype=torch.float64)
    alpha = torch.rand(nb.edge_index.shape[1], generator=g, dtype=torch.float64)
    conv = Wigner6jConv(lmax, lmax, lmax)
    assert conv.centring == "target"
    # the reference sees the same float32-rounded inputs (at 200 A, rounding the coordinates
    # alone moves a bond by ~1e-5 relative: no float32 algorithm can do better than its input)
    pos, h, alpha = pos.float().double(), h.float().double(), alpha.float().double()
    ref = conv.reference(h, pos, nb.edge_index, alpha)
    out = conv(h.float(), pos.float(), nb.edge_index, alpha.float()).double()
    keep = ref.norm(dim=(1, 2)) > 1e-6
    err = ((out - ref).norm(dim=(1, 2))[keep] / ref.norm(dim=(1, 2))[keep]).max()
    assert err < 1e-5, float(err)


@pytest.mark.parametrize("centring", ["target", "structure"])
def test_non_contiguous_inputs(centring):
    """Transposed-and-back features, strided positions and alpha give the contiguous result."""
    g = torch.Generator().manual_seed(3)
    pos = 1.5 * torch.randn(10, 3, generator=g, dtype=torch.float64)
    nb = neighbor_list(pos, 3.0)
    h = torch.randn(10, 9, 4, generator=g, dtype=torch.float64)
    alpha = torch.rand(nb.edge_index.shape[1], 4, generator=g, dtype=torch.float64)
    conv = Wigner6jConv(2, 2, 2, centring=centring)
    ref = conv(h, pos, nb.edge_index, alpha)
    h_nc = h.transpose(1, 2).contiguous().transpose(1, 2)
    pos_nc = pos.t().contiguous().t()
    alpha_nc = alpha.t().contiguous().t()
    assert not h_nc.is_contiguous() and not pos_nc.is_contiguous()
    torch.testing.assert_close(conv(h_nc, pos_nc, nb.edge_index, alpha_nc), ref, rtol=0, atol=1e-13)


def test_stored_tables_follow_settings_changed_after_init():
    """The module keeps its exact tables as buffers (traceable forward); a user who changes
    ``centring`` (or ``normalization``) after construction must still get the right answer, not
    the tables of the old setting."""
    g = torch.Generator().manual_seed(4)
    pos = 1.5 * torch.randn(10, 3, generator=g, dtype=torch.float64)
    nb = neighbor_list(pos, 3.0)
    h = torch.randn(10, 9, 4, generator=g, dtype=torch.float64)
    alpha = torch.rand(nb.edge_index.shape[1], 4, generator=g, dtype=torch.float64)
    conv = Wigner6jConv(2, 2, 2, centring="target")
    assert conv._tables() is not None
    for centring, normalization in (("structure", "component"), ("none", "integral")):
        conv.centring, conv.normalization = centring, normalization
        assert conv._tables() is None  # per-call look-up for settings the buffers were not made for
        ref = edge_reference(
            h,
            pos,
            nb.edge_index,
            alpha,
            lmax_in=2,
            l_filter=[0, 1, 2],
            lmax_out=2,
            normalization=normalization,
        )
        torch.testing.assert_close(conv(h, pos, nb.edge_index, alpha), ref, rtol=1e-10, atol=1e-12)


def test_errors_name_the_argument():
    """Inputs that once failed deep inside e3nn or bincount get errors naming the argument."""
    with pytest.raises(ValueError, match="l_filter must be <= 12"):
        Wigner6jConv(1, 1, 13)
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(5, 3, generator=g, dtype=torch.float64)
    nb = neighbor_list(pos, 3.0)
    h = torch.randn(5, 4, 2, generator=g, dtype=torch.float64)
    alpha = torch.rand(nb.edge_index.shape[1], generator=g, dtype=torch.float64)
    conv = Wigner6jConv(1, 1, 1, centring="structure")
    with pytest.raises(ValueError, match="batch must hold structure indices >= 0"):
        conv(h, pos, nb.edge_index, alpha, batch=torch.tensor([0, 0, -1, -1, -1]))


def test_model_arguments_are_checked():
    from equiscale.models.e2former import E2Former
    from equiscale.models.gaunt_net import GauntNet

    with pytest.raises(ValueError, match="channels must be an int >= 1"):
        E2Former(channels=-3)
    with pytest.raises(ValueError, match="cutoff must be > 0"):
        GauntNet(cutoff=0.0)
