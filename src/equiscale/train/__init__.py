"""Training: Lightning trainer, configs, tasks."""

from equiscale.train.config import TrainConfig, load_config
from equiscale.train.task import TaskData
from equiscale.train.trainer import evaluate, fit, load_checkpoint

__all__ = ["TrainConfig", "load_config", "TaskData", "fit", "evaluate", "load_checkpoint"]
