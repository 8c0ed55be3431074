"""Smoke test of ``equiscale bench context`` at toy sizes (timings are not asserted)."""

from __future__ import annotations

import argparse
import json

import torch

from equiscale.bench import context


def test_bench_context_runs_and_records(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    context.add_arguments(parser)
    out = tmp_path / "ctx.json"
    args = parser.parse_args(
        [
            "--tokens",
            "16",
            "32",
            "--arms",
            "se3hyena",
            "transformer",
            "--depth",
            "1",
            "--scalar-channels",
            "8",
            "--vector-channels",
            "4",
            "--fft-tokens",
            "32",
            "64",
            "--fft-channels",
            "4",
            "--repeats",
            "1",
            "--out",
            str(out),
            "--no-plot",
        ]
    )
    threads = torch.get_num_threads()
    try:
        record = context.run(args)
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved["memory_method"] == record["memory_method"]
    assert {(r["arm"], r["tokens"]) for r in saved["rows"]} == {
        ("se3hyena", 16),
        ("se3hyena", 32),
        ("transformer", 16),
        ("transformer", 32),
    }
    assert all(r["forward_backward_ms"] > 0 and r["peak_forward_backward_mb"] >= 0 for r in saved["rows"])
    assert "transformer/se3hyena_fwd_bwd_time_ratio" in saved["ratios"]["32"]
    assert len(saved["fft_scaling"]["rows"]) == 2 and "fft_conv_exponent" in saved["fft_scaling"]
    assert saved["command"] and saved["git_commit"]


def test_peak_bytes_sees_an_allocation() -> None:
    def alloc() -> None:
        x = torch.ones(4_000_000)  # 16 MB
        x.add_(1)

    mb = context.peak_bytes(alloc, "cpu") / 2**20
    assert 14 < mb < 40
