"""Configs: YAML with a safe loader, overrides, errors that name the field."""

import pytest

pytest.importorskip("lightning")  # equiscale.train: the train extra

from equiscale.train.config import TrainConfig, load_config


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task: nbody\nmodel: egnn\nlr: 1e-3\nmodel_args: {hidden: 32}\n")
    cfg = load_config(p, ["model_args.layers=2", "max_epochs=7"], seed=3)
    assert cfg.lr == 1e-3 and cfg.model_args == {"hidden": 32, "layers": 2}
    assert cfg.max_epochs == 7 and cfg.seed == 3


@pytest.mark.parametrize(
    "override, field",
    [
        ("lr=-1", "lr"),
        ("batch_size=abc", "batch_size"),
        ("bogus=1", "bogus"),
        ("scheduler=linear", "scheduler"),
        ("max_time=5", "max_time"),
        ("model_args=3", "model_args"),
        ("equivariance_trials=-1", "equivariance_trials"),
        ("equivariance_samples=0", "equivariance_samples"),
        ("equivariance_samples=true", "equivariance_samples"),
    ],
)
def test_invalid_config_names_the_field(override, field):
    with pytest.raises(ValueError, match=field):
        load_config(None, [override])


def test_unsafe_yaml_is_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("task: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(p)


def test_missing_config_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.yaml"):
        load_config(tmp_path / "nothere.yaml")


def test_defaults_are_valid():
    TrainConfig()


@pytest.mark.parametrize(
    "override,match",
    [
        ("lr=inf", "'lr' must be finite"),
        ("lr=.nan", "'lr' must be finite"),
        ("max_time=abc", "HH:MM:SS"),
        ("max_time=00:00:00", "longer than"),
        ("ema_decay=1.5", "ema_decay"),
    ],
)
def test_nonsense_values_are_rejected(override, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, [override])
