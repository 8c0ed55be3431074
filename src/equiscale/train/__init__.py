"""Training: Lightning trainer, configs, tasks."""

from equiscale.train.config import TrainConfig, load_config
from equiscale.train.soft_equivariance import SoftEquivarianceLoss
from equiscale.train.task import SymmetrySpec, TaskData
from equiscale.train.trainer import evaluate, fit, load_checkpoint

__all__ = [
    "TrainConfig",
    "load_config",
    "TaskData",
    "SymmetrySpec",
    "SoftEquivarianceLoss",
    "fit",
    "evaluate",
    "load_checkpoint",
]
