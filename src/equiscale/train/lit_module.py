"""The LightningModule that joins a registered model with a task's loss and metrics."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from equiscale import registry
from equiscale.train.config import TrainConfig
from equiscale.train.task import Batch, TaskData

__all__ = ["TaskModule", "build_model"]


def build_model(name: str, model_args: dict[str, Any]) -> torch.nn.Module:
    """Instantiate the registered model ``name`` with ``model_args``; bad arguments name the field."""
    cls = registry.load(registry.MODELS, name, "model")
    try:
        return cls(**model_args)
    except TypeError as exc:
        raise ValueError(f"config field 'model_args' does not fit model {name!r}: {exc}") from None


class TaskModule(L.LightningModule):
    """Model + task. Checkpoints also carry the Python, numpy and torch RNG states, so a resumed
    run draws the same random numbers as an unbroken one."""

    def __init__(self, config: dict[str, Any], task: TaskData | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = TrainConfig(**config)
        self.model = build_model(self.cfg.model, self.cfg.model_args)
        if self.cfg.precision in ("64-true", "64", "double"):
            # float64 from the start: a DDP run resumed from its float64 checkpoint drifted from an
            # unbroken one by float32 rounding (~5e-8 relative), the restored weights having passed
            # through the float32 module that Lightning's precision plugin converts later
            self.model.double()
        self.task = task
        self.soft_equivariance = None
        if self.cfg.soft_equivariance and task is not None:
            from equiscale.train.soft_equivariance import SoftEquivarianceLoss

            if task.symmetry is None:
                raise ValueError(
                    f"config field 'soft_equivariance': task {self.cfg.task!r} "
                    "declares no symmetry (TaskData.symmetry)"
                )
            self.soft_equivariance = SoftEquivarianceLoss.from_config(
                task.symmetry, self.cfg.soft_equivariance
            )
        self._cp_group: Any = None
        if self.cfg.context_parallel > 1 and not hasattr(self.model, "context_parallel_keys"):
            raise ValueError(
                f"config field 'context_parallel' needs a model that splits sequences "
                f"over processes (se3hyena), got {self.cfg.model!r}"
            )

    def setup(self, stage: str) -> None:
        cp = self.cfg.context_parallel
        if cp > 1 and self._cp_group is None:
            import torch.distributed as dist

            world = dist.get_world_size()
            for g in range(world // cp):  # every rank creates every group, in the same order
                group = dist.new_group(list(range(g * cp, (g + 1) * cp)))
                if dist.get_rank() // cp == g:
                    self._cp_group = group

    def forward(self, batch: Batch) -> Any:
        if self._cp_group is None:
            return self.model(batch)
        from equiscale.distributed import Shard, shard_bounds

        keys = [k for k in self.model.context_parallel_keys if k in batch]
        if not keys:
            raise ValueError(
                f"context_parallel: the batch holds none of the token entries "
                f"{self.model.context_parallel_keys} that {self.cfg.model!r} splits "
                f"(keys: {sorted(batch)}); use a task with one prediction per sequence"
            )
        n = batch[keys[0]].shape[1]
        rank, cp = self.global_rank % self.cfg.context_parallel, self.cfg.context_parallel
        s, e = shard_bounds(n, cp)[rank]
        block = {**batch, **{k: batch[k][:, s:e] for k in keys}}
        return self.model(block, shard=Shard.gather(e - s, self._cp_group, batch[keys[0]].device))

    def _batch_size(self, batch: Batch) -> int:
        if self.task is not None and self.task.batch_size_of is not None:
            return int(self.task.batch_size_of(batch))
        first = next(iter(batch.values()))
        return int(first.shape[0])

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        pred = self(batch)
        loss = self.task.loss(pred, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "lower 'lr' or set 'grad_clip'"
            )
        bs = self._batch_size(batch)
        self.log(
            "train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True
        )
        if self.soft_equivariance is not None:
            penalty, logs = self.soft_equivariance(self, batch, pred, loss, self.global_step)
            for name, value in logs.items():
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
            loss = loss + penalty
        return loss

    def _eval_step(self, batch: Batch, stage: str) -> None:
        with torch.enable_grad():  # force models differentiate the energy in evaluation too
            pred = self(batch)
        bs = self._batch_size(batch)
        self.log(f"{stage}/loss", self.task.loss(pred, batch).detach(), batch_size=bs, sync_dist=True)
        for name, value in self.task.metrics(pred, batch).items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                batch_size=bs,
                sync_dist=True,
                prog_bar=name == self.task.monitor,
            )

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
        if cfg.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if cfg.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10)
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": sched,
                    "monitor": f"val/{self.task.monitor}",
                    "interval": "epoch",
                    "frequency": cfg.val_every,
                },
            }
        return opt

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # flush the logs with the checkpoint: a kill after it must not lose epochs a resume skips
        if self._trainer is not None:
            for logger in self.trainer.loggers:
                logger.save()
        np_state = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
            "python": _to_lists(random.getstate()),
        }
        if self.soft_equivariance is not None:  # the "auto" schedule's moving averages
            checkpoint["soft_equivariance_averages"] = dict(self.soft_equivariance.averages)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        averages = checkpoint.get("soft_equivariance_averages")
        if averages is not None and self.soft_equivariance is not None:
            self.soft_equivariance.averages = dict(averages)
        states = checkpoint.get("rng_states")
        if states is None:
            return
        torch.set_rng_state(states["torch"])
        np_state = states["numpy"]
        np.random.set_state((np_state[0], np_state[1].numpy(), *np_state[2:]))
        random.setstate(_to_tuples(states["python"]))


def _to_lists(obj: Any) -> Any:
    return [_to_lists(o) for o in obj] if isinstance(obj, tuple) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(o) for o in obj) if isinstance(obj, list) else obj
