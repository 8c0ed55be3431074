"""bench conv: e3nn's edge convolution (the peer) computes exactly the convolution it is timed
against, and the L-scan section runs and records it."""

from __future__ import annotations

import argparse

import torch

from equiscale.bench import conv
from equiscale.ops import edge_reference
from equiscale.ops.neighbors import neighbor_list


def test_e3nn_edge_conv_equals_edge_reference_float64():
    g = torch.Generator().manual_seed(0)
    for lmax in (1, 3):
        pos = 2.0 * torch.randn(20, 3, generator=g, dtype=torch.float64)
        nb = neighbor_list(pos, 3.0)
        h = torch.randn(20, (lmax + 1) ** 2, 5, generator=g, dtype=torch.float64)
        alpha = torch.rand(nb.edge_index.shape[1], 5, generator=g, dtype=torch.float64)
        ref = edge_reference(
            h, pos, nb.edge_index, alpha, lmax_in=lmax, l_filter=list(range(lmax + 1)), lmax_out=lmax
        )
        # e3nn bakes its Wigner 3j constants in the default dtype when the module is built
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            module = conv.E3nnEdgeConv(lmax, 5)
        finally:
            torch.set_default_dtype(default)
        e3 = module(conv.to_e3nn_layout(h, lmax), pos, nb.edge_index, alpha)
        err = (e3 - conv.to_e3nn_layout(ref, lmax)).abs().max() / ref.abs().max()
        assert err < 1e-12, (lmax, float(err))


def test_lmax_section_runs_with_e3nn(tmp_path):
    parser = argparse.ArgumentParser()
    conv.add_arguments(parser)
    args = parser.parse_args(
        [
            "--sections",
            "lmax",
            "--lmax-scan",
            "1",
            "2",
            "--atoms",
            "27",
            "--lscan-neighbors",
            "6",
            "--lscan-channels",
            "4",
            "--repeats",
            "1",
            "--no-plot",
            "--out",
            str(tmp_path / "c.json"),
        ]
    )
    rec = conv.run(args)
    assert [r["lmax"] for r in rec["vs_lmax"]] == [1, 2]
    for row in rec["vs_lmax"]:
        assert row["rel_diff_vs_reference"]["e3nn_edge"] < 1e-5
        assert row["results"]["e3nn_edge"]["forward_backward"]["median_ms"] > 0
