"""``equiscale bench tp`` runs end to end on tiny sizes and writes a consistent record."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")  # equiscale.bench: the train extra

import argparse
import json

from equiscale.bench import tp as bench_tp


def test_bench_tp_small(tmp_path):
    parser = argparse.ArgumentParser()
    bench_tp.add_arguments(parser)
    out = tmp_path / "tp.json"
    args = parser.parse_args(
        [
            "--lmin",
            "1",
            "--lmax",
            "2",
            "--fit-lmin",
            "1",
            "--batch",
            "2",
            "--channels",
            "2",
            "--repeats",
            "1",
            "--rounds",
            "2",
            "--warmup",
            "0",
            "--out",
            str(out),
        ]
    )
    record = bench_tp.run(args)
    saved = json.loads(out.read_text())
    assert saved["command"] and saved["results"] == json.loads(json.dumps(record["results"]))
    methods = {(r["L"], r["method"]) for r in saved["results"]}
    assert methods == {(l, m) for l in (1, 2) for m in ("gaunt-dense", "gaunt-fourier", "gaunt-grid", "e3nn")}
    assert set(saved["speedup_vs_e3nn"]) == {"1", "2"}
    assert "gaunt-grid" in saved["exponents"]
    assert saved["notes"] == [
        "cuEquivariance skipped: GPU only (device is CPU; --cueq times its CPU fallback)"
    ]
    assert out.with_suffix(".png").is_file()


def test_cueq_runs_on_exactly_the_gaunt_paths(tmp_path):
    """cuEquivariance's channel-wise product (CPU fallback) is built on the same paths as the e3nn
    comparison, runs inside ``bench tp --cueq``, and is equivariant like the Gaunt product."""
    pytest.importorskip("cuequivariance_torch")  # the cueq extra
    import torch
    from e3nn import o3

    from equiscale.so3.layout import to_e3nn
    from equiscale.testing import random_rotation

    for lmax, channels in ((2, 3), (4, 2)):
        ctp = bench_tp.cueq_gaunt_paths_tp(lmax, channels)
        assert ctp.weight_numel == channels * bench_tp.e3nn_gaunt_paths_tp(lmax, channels)[1]
    ctp = bench_tp.cueq_gaunt_paths_tp(2, 3).double()
    x, y = torch.randn(4, 9, 3, dtype=torch.float64), torch.randn(4, 9, 1, dtype=torch.float64)
    rot = random_rotation(torch.float64, torch.Generator().manual_seed(0))
    d_in = o3.Irreps("0e + 1o + 2e").D_from_matrix(rot)
    f = lambda a, b: ctp(to_e3nn(a).contiguous(), to_e3nn(b).contiguous())
    out, out_rot = f(x, y), f(torch.einsum("ij,bjc->bic", d_in, x), torch.einsum("ij,bjc->bic", d_in, y))
    d_out = o3.Irreps(str(ctp.irreps_out)).D_from_matrix(rot)
    # the wiring (mul_ir layout, parities) is right: a wrong layout errs at O(1); the residual
    # ~2e-6 is cuEquivariance's own float32 coefficient tables
    assert (out_rot - out @ d_out.T).abs().max() < 1e-5
    parser = argparse.ArgumentParser()
    bench_tp.add_arguments(parser)
    out = tmp_path / "tp.json"
    args = parser.parse_args(
        [
            "--lmin",
            "2",
            "--lmax",
            "2",
            "--fit-lmin",
            "2",
            "--batch",
            "2",
            "--channels",
            "2",
            "--repeats",
            "1",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--backends",
            "grid",
            "--cueq",
            "--no-plot",
            "--out",
            str(out),
        ]
    )
    saved = bench_tp.run(args)
    assert {r["method"] for r in saved["results"]} == {"gaunt-grid", "e3nn", "cueq"}
    assert any("naive fallback" in n for n in saved["notes"])
