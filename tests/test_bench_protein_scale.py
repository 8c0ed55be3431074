"""``equiscale bench protein-scale`` at toy sizes: record structure, replicated systems, stopping rule
(timings are not asserted)."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from equiscale.bench import protein_scale
from equiscale.ops.neighbors import neighbor_list

pytest.importorskip("openmm")
pytest.importorskip("openmmtools")

TINY = ["--channels", "4", "--layers", "1", "--heads", "1", "--num-radial", "4", "--filter-hidden", "4"]


def _run(tmp_path, *extra: str) -> tuple[dict, dict]:
    parser = argparse.ArgumentParser()
    protein_scale.add_arguments(parser)
    out = tmp_path / "scale.json"
    args = parser.parse_args(
        ["--atoms", "64", "128", "256", "--repeats", "1", "--warmup", "0", "--fit-from", "64"]
        + TINY
        + ["--out", str(out), *extra]
    )
    threads = torch.get_num_threads()
    try:
        record = protein_scale.run(args)
    finally:
        torch.set_num_threads(threads)
    return record, json.loads(out.read_text())


def test_replicated_systems_have_the_atom_counts_and_no_overlaps() -> None:
    pos, z = protein_scale.protein_copies()
    assert pos.shape == (2603, 3) and z.shape == (2603,)
    for n in (100, 2603, 2 * 2603 + 500, 9 * 2603 + 1):
        p, zz, info = protein_scale.replicate(pos, z, n, gap=4.0)
        assert p.shape == (n, 3) and zz.shape == (n,)
        assert info["copies"] == -(-n // 2603) and info["lattice_side"] ** 3 >= info["copies"]
        np.testing.assert_array_equal(zz[: min(n, 2603)], z[: min(n, 2603)])  # topology order
        close = neighbor_list(torch.tensor(p), 0.5).edge_index
        assert close.shape[1] == 0, "atoms closer than 0.5 A"
    # a copy is the structure translated: its internal distances are unchanged
    p, _, _ = protein_scale.replicate(pos, z, 2 * 2603, gap=4.0)
    np.testing.assert_allclose(p[2603:] - p[2603], pos - pos[0], atol=1e-9)


def test_bench_runs_and_records(tmp_path) -> None:
    record, saved = _run(tmp_path, "--no-plot")
    assert saved["benchmark"] == "protein-scale" and saved["command"] and saved["git_commit"]
    assert saved["memory_method"] == record["memory_method"]
    models = list(protein_scale.MODELS)
    assert {(r["model"], r["mode"], r["n"]) for r in saved["rows"]} == {
        (m, mode, n) for m in models for mode in protein_scale.MODES for n in (64, 128, 256)
    }
    assert all(r["median_ms"] > 0 and r["peak_mb"] >= 0 for r in saved["rows"])
    assert [s["n"] for s in saved["systems"]] == [64, 128, 256]
    assert all(s["edges_per_atom"] > 0 for s in saved["systems"])
    for m in models:
        for mode in protein_scale.MODES:
            e = saved["exponents"][m][mode]
            assert e["time"]["sizes"] == [64, 128, 256]
            assert math.isfinite(e["time"]["exponent"])
            assert saved["stopped"][m][mode] is None and saved["largest_n"][m][mode] == 256
    assert math.isfinite(saved["neighbor_list_exponent"]["exponent"])


def test_tiny_time_cap_stops_after_the_first_size(tmp_path) -> None:
    _, saved = _run(tmp_path, "--models", "hybrid", "--time-cap-s", "1e-9")
    for mode in protein_scale.MODES:
        assert saved["stopped"]["hybrid"][mode]["n"] == 128
        assert "time" in saved["stopped"]["hybrid"][mode]["reason"]
        assert saved["largest_n"]["hybrid"][mode] == 64
    assert saved["exponents"]["hybrid"]["forward"]["time"] is None  # one size: no fit
    assert (tmp_path / "scale.png").exists()


def test_stopping_rule_extrapolates_memory() -> None:
    args = argparse.Namespace(memory_cap_gb=1.0, time_cap_s=1e9)
    linear = [
        {"n": 1000, "peak_mb": 100.0, "median_ms": 1.0},
        {"n": 2000, "peak_mb": 200.0, "median_ms": 2.0},
    ]
    assert protein_scale._stop_reason(linear, 8000, args) is None  # 800 MB predicted
    assert "memory" in protein_scale._stop_reason(linear, 16000, args)  # 1600 MB
    quadratic = [{**linear[0]}, {**linear[1], "peak_mb": 400.0}]
    assert "memory" in protein_scale._stop_reason(quadratic, 4000, args)  # 1600 MB
    assert protein_scale._stop_reason(linear[:1], 10000, args) is None  # linear from one size


def test_energy_mode_is_the_forward_pass_alone(tmp_path) -> None:
    """--modes energy: rows for that mode only; it costs less than energy and forces at the same size
    (no graph is kept), and the model's compute_forces is restored after the call."""
    _, saved = _run(tmp_path, "--models", "hybrid", "--modes", "energy", "forward", "--no-plot")
    assert {r["mode"] for r in saved["rows"]} == {"energy", "forward"}
    assert set(saved["stopped"]["hybrid"]) == {"energy", "forward"}
    parser = argparse.ArgumentParser()
    protein_scale.add_arguments(parser)
    args = parser.parse_args(TINY)
    p, z, _ = protein_scale.replicate(*protein_scale.protein_copies(), 64, 4.0)
    model, calls = protein_scale._calls("hybrid", p, z, args)
    calls["energy"]()
    assert model.compute_forces is True


def test_coulomb_terms_are_measured_on_request(tmp_path) -> None:
    """--models coulomb_direct coulomb_mesh hybrid_coulomb_mesh: rows for each (not in the default
    list); the two Coulomb terms compute the same energy and forces to the mesh error."""
    names = ["coulomb_direct", "coulomb_mesh", "hybrid_coulomb_mesh"]
    _, saved = _run(tmp_path, "--no-plot", "--models", *names, "--modes", "forward", "--mesh-spacing", "0.5")
    assert {(r["model"], r["n"]) for r in saved["rows"]} == {(m, n) for m in names for n in (64, 128, 256)}
    assert not set(names) & set(protein_scale.MODELS)
    with pytest.raises(ValueError, match="--mesh-spacing"):
        _run(tmp_path, "--models", "coulomb_mesh", "--mesh-spacing", "0")
    pos, z = protein_scale.protein_copies()
    batch = {"pos": torch.tensor(pos[:300]), "z": torch.tensor(z[:300])}
    direct = protein_scale._CoulombTerm(None).double()(batch)
    mesh = protein_scale._CoulombTerm(0.5).double()(batch)
    torch.testing.assert_close(mesh["energy"], direct["energy"], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(mesh["forces"], direct["forces"], rtol=1e-4, atol=1e-5)
