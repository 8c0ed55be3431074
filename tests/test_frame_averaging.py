"""Frame averaging: exact E(3) equivariance of a non-equivariant backbone, SE(3) variant, degeneracy."""

from __future__ import annotations

import pytest
import torch

from equiscale.models.frame_averaging import FrameAveraging, pca_frames
from equiscale.testing import assert_equivariant, equivariance_error

F64 = torch.float64


def test_frames_are_orthonormal_and_equivariant_as_a_set() -> None:
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(3, 10, 3, dtype=F64, generator=gen)
    for group, k in (("e3", 8), ("se3", 4)):
        f, t, deg = pca_frames(pos, group)
        assert f.shape == (3, k, 3, 3) and t.shape == (3, 1, 3) and not deg.any()
        eye = torch.eye(3, dtype=F64)
        assert (f.transpose(-1, -2) @ f - eye).abs().max() < 1e-12
        if group == "se3":
            assert (torch.linalg.det(f) - 1).abs().max() < 1e-12


def test_fa_hyena_is_e3_equivariant_recall_layout() -> None:
    torch.manual_seed(1)
    fa = FrameAveraging("hyena", {"scalar_channels": 8, "vector_channels": 2, "depth": 1}).double()
    gen = torch.Generator().manual_seed(1)
    pos = torch.randn(2, 9, 3, dtype=F64, generator=gen)
    tt = torch.randn(2, 9, 3, dtype=F64, generator=gen)
    fn = lambda p, t: fa({"pos": p, "token_type": t})
    assert fn(pos, tt).shape == (2, 3)
    assert_equivariant(fn, [pos, tt], ["position", "scalar"], ["position"], reflection=True, translation=True)
    # the backbone alone is not
    bb = lambda p, t: fa.backbone({"pos": p, "token_type": t})
    assert equivariance_error(bb, [pos, tt], ["position", "scalar"], ["position"])["rotation"] > 1e-3


def test_fa_gnn_nbody_layout_se3_and_permutation() -> None:
    torch.manual_seed(2)
    fa = FrameAveraging("gnn", {"hidden": 16, "layers": 2}, group="se3").double()
    gen = torch.Generator().manual_seed(2)
    loc = torch.randn(2, 5, 3, dtype=F64, generator=gen)
    vel = torch.randn(2, 5, 3, dtype=F64, generator=gen)
    q = torch.randn(2, 5, dtype=F64, generator=gen).sign()
    fn = lambda x, v, c: fa({"loc": x, "vel": v, "charges": c})
    assert fn(loc, vel, q).shape == (2, 5, 3)
    assert_equivariant(
        fn,
        [loc, vel, q],
        ["position", "vector", "scalar"],
        ["position"],
        translation=True,
        permutation=True,
        node_dims=[1, 1, 1],
        out_node_dims=[1],
    )
    err = equivariance_error(
        fn, [loc, vel, q], ["position", "vector", "scalar"], ["position"], rotation=False, reflection=True
    )
    assert err["reflection"] > 1e-4  # 4 proper frames: rotations only


def test_sampled_frames() -> None:
    torch.manual_seed(3)
    fa = FrameAveraging(
        "hyena", {"scalar_channels": 8, "vector_channels": 2, "depth": 1}, frames="sampled"
    ).double()
    pos = torch.randn(4, 7, 3, dtype=F64)
    tt = torch.randn(4, 7, 3, dtype=F64)
    fa.train()
    f, _, _ = fa.frames(pos)
    assert f.shape == (4, 1, 3, 3)
    out = fa({"pos": pos, "token_type": tt})
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    fa.eval()
    assert fa.frames(pos)[0].shape == (4, 8, 3, 3)
    assert_equivariant(
        lambda p, t: fa({"pos": p, "token_type": t}),
        [pos, tt],
        ["position", "scalar"],
        ["position"],
        reflection=True,
    )


def test_degenerate_spectra_are_flagged_and_finite() -> None:
    torch.manual_seed(4)
    cube = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)], dtype=F64)
    coincident = torch.zeros(8, 3, dtype=F64)
    line = torch.linspace(-1, 1, 8, dtype=F64)[:, None] * torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    pos = torch.stack([cube, coincident, line]).requires_grad_(True)
    _, _, deg = pca_frames(pos)
    assert deg.tolist() == [True, True, True]
    fa = FrameAveraging("hyena", {"scalar_channels": 8, "vector_channels": 2, "depth": 1}).double()
    out = fa({"pos": pos, "token_type": torch.randn(3, 8, 3, dtype=F64)})
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(pos.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in fa.parameters() if p.grad is not None)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frames"):
        FrameAveraging("hyena", frames="some")
    with pytest.raises(ValueError, match="unknown model"):
        FrameAveraging("nope")


def test_fa_gnn_with_relative_edges_is_e3_equivariant() -> None:
    """The GNN with relative-position edge features is not equivariant by itself; averaged over
    the 8 PCA frames it is (rotations, reflections, translations, permutations)."""
    from equiscale.models.baselines import GNNBaseline

    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(3)
    loc = torch.randn(2, 5, 3, dtype=F64, generator=gen)
    vel = torch.randn(2, 5, 3, dtype=F64, generator=gen)
    q = torch.randn(2, 5, dtype=F64, generator=gen).sign()
    kinds, nd = ["position", "vector", "scalar"], dict(node_dims=[1, 1, 1], out_node_dims=[1])
    gnn = GNNBaseline(16, 2, edge_geometry="relative").double()
    raw = lambda x, v, c: gnn({"loc": x, "vel": v, "charges": c})
    assert equivariance_error(raw, [loc, vel, q], kinds, ["position"])["rotation"] > 1e-4
    fa = FrameAveraging("gnn", {"hidden": 16, "layers": 2, "edge_geometry": "relative"}).double()
    fn = lambda x, v, c: fa({"loc": x, "vel": v, "charges": c})
    assert_equivariant(
        fn, [loc, vel, q], kinds, ["position"], reflection=True, translation=True, permutation=True, **nd
    )
    with pytest.raises(ValueError, match="edge_geometry"):
        GNNBaseline(16, 2, edge_geometry="angles")
