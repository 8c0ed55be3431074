"""``equiscale bench tp`` runs end to end on tiny sizes and writes a consistent record."""

from __future__ import annotations

import argparse
import json

from equiscale.bench import tp as bench_tp


def test_bench_tp_small(tmp_path):
    parser = argparse.ArgumentParser()
    bench_tp.add_arguments(parser)
    out = tmp_path / "tp.json"
    args = parser.parse_args(["--lmin", "1", "--lmax", "2", "--fit-lmin", "1", "--batch", "2",
                              "--channels", "2", "--repeats", "1", "--rounds", "2", "--warmup", "0",
                              "--out", str(out)])
    record = bench_tp.run(args)
    saved = json.loads(out.read_text())
    assert saved["command"] and saved["results"] == json.loads(json.dumps(record["results"]))
    methods = {(r["L"], r["method"]) for r in saved["results"]}
    assert methods == {(l, m) for l in (1, 2) for m in
                       ("gaunt-dense", "gaunt-fourier", "gaunt-grid", "e3nn")}
    assert set(saved["speedup_vs_e3nn"]) == {"1", "2"}
    assert "gaunt-grid" in saved["exponents"]
    assert saved["notes"] == ["cuEquivariance skipped: GPU only (device is CPU)"]
    assert out.with_suffix(".png").is_file()
