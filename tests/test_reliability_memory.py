"""Memory honesty: the estimate bounds the measured resident-set peak (1x..3x) on sizes other than
the fitted ones, and a run that would not fit stops with an error saying what is needed and what
to change."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")  # equiscale.train: the train extra
import torch

from equiscale.bench.context import peak_bytes
from equiscale.train.memory import MemoryBudgetError, check_memory, estimate_peak_memory


def _measured_token_model(name: str, b: int, n: int, cs: int, cv: int, depth: int) -> tuple[int, int]:
    from equiscale.models.equivariant_transformer import EquivariantTransformer
    from equiscale.models.se3_hyena import SE3HyenaNet

    torch.manual_seed(0)
    cls = SE3HyenaNet if name == "se3hyena" else EquivariantTransformer
    model = cls(cs, cv, depth)
    batch = {"pos": torch.randn(b, n, 3), "token_type": torch.zeros(b, n, 3)}

    def step():
        model.zero_grad(set_to_none=True)
        model(batch).square().sum().backward()

    step()
    return peak_bytes(step, "cpu"), sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name,b,n,cs,cv,depth", [("se3hyena", 1, 20000, 48, 4, 2), ("eq_transformer", 2, 6000, 16, 8, 2)]
)
def test_estimate_bounds_the_measured_peak(name, b, n, cs, cv, depth):
    measured, n_params = _measured_token_model(name, b, n, cs, cv, depth)
    est = estimate_peak_memory(
        name, batch=b, tokens=n, scalar_channels=cs, vector_channels=cv, depth=depth, n_parameters=n_params
    )
    assert measured <= est <= 3 * measured, (measured, est)


def test_e2former_estimate_bounds_the_measured_peak():
    from equiscale.models.e2former import E2Former
    from equiscale.ops.neighbors import neighbor_list

    torch.manual_seed(0)
    pos = 14.0 * torch.rand(300, 3)
    model = E2Former(channels=24, lmax=2, num_layers=1, heads=2, cutoff=3.0).train()
    edges = neighbor_list(pos, 3.0).edge_index.shape[1]

    def step():
        model.zero_grad(set_to_none=True)
        out = model({"pos": pos, "z": torch.ones(300, dtype=torch.long)})
        (out["energy"].sum() + out["forces"].pow(2).sum()).backward()

    step()
    measured = peak_bytes(step, "cpu")
    est = estimate_peak_memory(
        "e2former",
        edges=edges,
        channels=24,
        lmax=2,
        layers=1,
        n_parameters=sum(p.numel() for p in model.parameters()),
    )
    assert measured <= est <= 3 * measured, (measured, est)


def test_estimate_scales_as_the_model_does():
    base = dict(batch=1, scalar_channels=64, vector_channels=16, depth=4)
    small = estimate_peak_memory("se3hyena", tokens=10_000, **base)
    big = estimate_peak_memory("se3hyena", tokens=20_000, **base)
    fixed = estimate_peak_memory("se3hyena", tokens=0, **base)
    assert big - fixed == pytest.approx(2 * (small - fixed), rel=1e-6)  # linear in tokens
    lin = estimate_peak_memory("eq_transformer", tokens=10_000, **base)
    quad = estimate_peak_memory("eq_transformer", tokens=10_000, attention_matrix=True, **base)
    # SAFETY x itemsize 4 x depth 4 x batch 1 x heads 4 x N^2 x 3 (scores, softmax, gradient)
    assert quad - lin == pytest.approx(1.35 * 4 * 4 * 1 * 4 * 10_000**2 * 3, rel=1e-6)
    assert estimate_peak_memory("se3hyena", tokens=10_000, dtype=torch.float64, **base) > small
    assert estimate_peak_memory("se3hyena", tokens=10_000, training=False, **base) < small


def test_check_memory_stops_with_what_is_needed_and_what_to_change():
    with pytest.raises(MemoryBudgetError) as info:
        check_memory("se3hyena", available=8 * 2**30, tokens=3_500_000, batch=4, depth=4)
    msg = str(info.value)
    assert "GiB" in msg and "tokens" in msg and "3500000" in msg and "batch" in msg
    assert "bf16" in msg and "checkpoint_mixer" in msg
    # the suggested token count does fit
    suggested = int(msg.split("at most ~")[1].split(";")[0].split()[0])
    assert 0 < suggested < 3_500_000
    assert check_memory("se3hyena", available=8 * 2**30, tokens=suggested, batch=4, depth=4) > 0
    with pytest.raises(MemoryBudgetError, match="edges"):
        check_memory("e2former", available=2**30, edges=10**7, channels=128, lmax=3)
    with pytest.raises(MemoryBudgetError, match="Hyena"):
        check_memory("eq_transformer", available=2**30, tokens=200_000, attention_matrix=True)
    assert isinstance(MemoryBudgetError("x"), MemoryError)


def test_small_run_passes_and_bad_arguments_are_named():
    assert check_memory("se3hyena", tokens=64, batch=2) > 0  # the real free memory of this machine
    with pytest.raises(ValueError, match="tokens"):
        estimate_peak_memory("se3hyena", tokens=-1)
    with pytest.raises(ValueError, match="model"):
        estimate_peak_memory("resnet", tokens=1)
    with pytest.raises(TypeError, match="dtype"):
        estimate_peak_memory("se3hyena", tokens=1, dtype="float32")
    with pytest.raises(ValueError, match="fraction"):
        check_memory("se3hyena", tokens=1, fraction=0)


def test_training_run_that_will_not_fit_stops_before_it_starts(tmp_path, capsys):
    from equiscale.cli import main
    from equiscale.train import load_config
    from equiscale.train.memory import check_config_memory

    assert check_config_memory(load_config("configs/hyena_recall.yaml")) < 2**30  # the shipped config fits
    assert check_config_memory(load_config("configs/e2former_md.yaml")) is None  # no estimate without data
    code = main(
        [
            "train",
            "--config",
            "configs/hyena_recall.yaml",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "data_args.length=50000000",
            "--set",
            "batch_size=64",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "se3hyena needs about" in err and "tokens (sequence length) 50000000" in err
    assert not (tmp_path / "run").exists()  # nothing was started
