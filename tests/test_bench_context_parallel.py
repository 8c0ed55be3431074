"""``equiscale bench context-parallel`` end to end on tiny sizes (2 gloo processes), its argument
checks, and the filter rows each rank makes."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("matplotlib")  # equiscale.bench: the train extra
import torch

from equiscale.bench import context_parallel
from equiscale.nn.hyena import ImplicitFilter


def _args(tmp_path, **kw):
    parser = argparse.ArgumentParser()
    context_parallel.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "cp.json")])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


@pytest.mark.slow
def test_bench_context_parallel_writes_a_record(tmp_path):
    args = _args(tmp_path, tokens=256, ranks=[1, 2], longest=[512], longest_ranks=[2], repeats=1)
    rec = context_parallel.run(args)
    on_disk = json.loads((tmp_path / "cp.json").read_text())
    assert on_disk["scaling"] == rec["scaling"]
    assert [r["ranks"] for r in rec["scaling"]] == [1, 2] and all(r["ok"] for r in rec["scaling"])
    two = rec["scaling"][1]
    assert [r["tokens_on_rank"] for r in two["per_rank"]] == [128, 128]
    assert two["bytes_sent_per_step_max"] > 0 and rec["scaling"][0]["bytes_sent_per_step_max"] == 0
    # the activations saved for backward are split: about half per rank at P = 2
    assert 0.3 < two["saved_ratio_to_p1"] < 0.65, two["saved_ratio_to_p1"]
    assert rec["longest_ok_tokens"] == {"2": 512}
    assert (tmp_path / "cp.png").stat().st_size > 0


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"tokens": 0}, "--tokens"),
        ({"ranks": [0, 2]}, "--ranks"),
        ({"longest": [-5]}, "--longest"),
        ({"memory_budget_mb": 0.0}, "--memory-budget-mb"),
    ],
)
def test_bench_context_parallel_rejects_absurd_options(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        context_parallel.run(_args(tmp_path, **kw))
    assert not (tmp_path / "cp.json").exists()


@pytest.mark.parametrize("causal", [True, False])
def test_filter_rows_are_the_rows_of_the_whole_filter(causal):
    torch.manual_seed(0)
    f = ImplicitFilter(3, causal=causal).double()
    whole = f(9)
    m = whole.shape[0]
    for lo, hi in [(0, m), (0, 4), (4, m), (5, 5)]:
        assert torch.equal(f(9, (lo, hi)), whole[lo:hi])
    with pytest.raises(ValueError, match="rows"):
        f(9, (0, m + 1))
