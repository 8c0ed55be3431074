"""Training and evaluation on PyTorch Lightning.

``fit(cfg)`` trains a registered model on a registered task: seeded, a checkpoint every epoch
(``last.ckpt``) plus the best by validation, resumable exactly (``resume=True``), data parallel by
Lightning's own DDP strategy (``strategy="ddp"``; gloo on CPU), CSV logs (TensorBoard optional),
and the test split evaluated with the best-validation checkpoint. The run folder gets
``results.json`` (metrics, command, commit, device, versions, wall time) and plots.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.callbacks import WeightAveraging as _WeightAveraging
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Sampler

from equiscale import registry
from equiscale.provenance import portable_path, provenance, write_json
from equiscale.train.checkpoint_io import AtomicCheckpointIO
from equiscale.train.config import TrainConfig
from equiscale.train.lit_module import TaskModule
from equiscale.train.task import TaskData

__all__ = ["fit", "evaluate", "build_task", "load_checkpoint", "init_weights", "EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with ``seed + epoch``: the order of epoch k never depends on what ran before, so a
    resumed run sees the same batches as an unbroken one (Lightning calls ``set_epoch``)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def build_task(cfg: TrainConfig) -> TaskData:
    builder = registry.load(registry.TASKS, cfg.task, "task")
    try:
        return builder(**cfg.data_args)
    except TypeError as exc:
        raise ValueError(f"config field 'data_args' does not fit task {cfg.task!r}: {exc}") from None


class ContextParallelSampler(EpochShuffleSampler):
    """:class:`EpochShuffleSampler` split over the data-parallel groups of a context-parallel run:
    the ``context_parallel`` ranks of one group draw the same samples (each takes its block of every
    sequence); group ``g`` of ``G`` takes samples ``g, g + G, ...`` of the epoch's permutation. The
    group is read from ``torch.distributed`` when iterating (the process group exists by then)."""

    def __init__(self, n: int, seed: int, context_parallel: int) -> None:
        super().__init__(n, seed)
        self.cp = context_parallel

    def _group(self) -> tuple[int, int]:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return 0, 1
        return dist.get_rank() // self.cp, dist.get_world_size() // self.cp

    def __iter__(self):
        g, groups = self._group()
        return iter(list(super().__iter__())[g::groups])

    def __len__(self) -> int:
        g, groups = self._group()
        return len(range(g, self.n, groups))


def _loaders(cfg: TrainConfig, task: TaskData, distributed: bool) -> tuple[DataLoader, ...]:
    common = {
        "collate_fn": task.collate,
        "num_workers": cfg.num_workers,
        "persistent_workers": cfg.num_workers > 0,
    }
    if cfg.context_parallel > 1:  # our sampler (Lightning's would give each rank other samples)
        sampler = ContextParallelSampler(len(task.train), cfg.seed, cfg.context_parallel)
        train = DataLoader(task.train, batch_size=cfg.batch_size, sampler=sampler, **common)
    elif distributed:  # Lightning swaps in a DistributedSampler seeded with the global seed
        train = DataLoader(task.train, batch_size=cfg.batch_size, shuffle=True, **common)
    else:
        sampler = EpochShuffleSampler(len(task.train), cfg.seed)
        train = DataLoader(task.train, batch_size=cfg.batch_size, sampler=sampler, **common)
    val = DataLoader(task.val, batch_size=cfg.eval_batch_size, shuffle=False, **common)
    test = DataLoader(task.test, batch_size=cfg.eval_batch_size, shuffle=False, **common)
    return train, val, test


class CpuTimeBudget(L.Callback):
    """Stop training (cleanly, as Lightning's wall-clock ``max_time`` does) after the first step at
    which the process has used ``seconds`` of CPU time (``time.process_time``) since training
    started (under DDP, when any rank has); ``used`` holds the CPU seconds of the fit."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start, self.used = float(seconds), 0.0, 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.process_time()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.used = time.process_time() - self.start
        # every rank decides together (as Lightning's Timer does): a rank that stopped alone would
        # leave the others waiting in the next gradient all-reduce
        if trainer.strategy.reduce_boolean_decision(self.used >= self.seconds, all=False):
            trainer.should_stop = True


def _seconds(text: str) -> int:
    """Seconds of a validated ``"HH:MM:SS"`` budget."""
    h, m, s = (int(x) for x in text.split(":"))
    return 3600 * h + 60 * m + s


def _trainer(cfg: TrainConfig, out: Path, callbacks: list, loggers: list | bool) -> L.Trainer:
    strategy: Any = cfg.strategy
    if (
        cfg.strategy.startswith("ddp")
        and cfg.accelerator in ("cpu", "auto")
        and not torch.cuda.is_available()
    ):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(
            process_group_backend="gloo",
            start_method="popen" if cfg.strategy == "ddp" else "spawn",
            find_unused_parameters=cfg.context_parallel > 1,
        )
    elif cfg.context_parallel > 1 and cfg.strategy == "ddp":
        strategy = "ddp_find_unused_parameters_true"
    return L.Trainer(
        default_root_dir=str(out),
        max_epochs=cfg.max_epochs,
        max_time=None if cfg.max_time is None else {"seconds": _seconds(cfg.max_time)},
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=strategy,
        precision=cfg.precision,
        gradient_clip_val=cfg.grad_clip or None,
        check_val_every_n_epoch=cfg.val_every,
        log_every_n_steps=cfg.log_every,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        inference_mode=False,
        deterministic=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=cfg.context_parallel == 1,
    )


def fit(cfg: TrainConfig, resume: bool | str = False) -> dict[str, Any]:
    """Train, checkpoint every epoch, test the best-validation checkpoint; return the results.

    ``resume=True`` continues from ``out_dir/checkpoints/last.ckpt``; a path resumes from that file.
    A missing checkpoint raises ``FileNotFoundError`` naming the path.
    """
    started = time.time()
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_path: str | None = None
    if resume:
        path = ckpt_dir / "last.ckpt" if resume is True else Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
        _check_resume_config(path, cfg)
        ckpt_path = str(path)
    elif (ckpt_dir / "last.ckpt").exists() or (out / "results.json").exists():
        held = "checkpoints/last.ckpt" if (ckpt_dir / "last.ckpt").exists() else "results.json"
        raise FileExistsError(
            f"{out} already holds a run ({held}); pass --resume to continue it or "
            "choose another out_dir; nothing was overwritten"
        )
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"config field 'accelerator' is {cfg.accelerator!r} but no CUDA device is "
            "available on this machine (use 'cpu' or 'auto')"
        )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    from equiscale.train.memory import check_config_memory

    check_config_memory(cfg)  # a long-context run that will not fit stops here, saying what to change
    task = build_task(cfg)
    module = TaskModule(cfg.to_dict(), task)
    if cfg.init_from is not None and ckpt_path is None:
        init_weights(module, cfg.init_from)
    distributed = cfg.strategy.startswith("ddp")
    train_dl, val_dl, test_dl = _loaders(cfg, task, distributed)
    monitor = f"val/{task.monitor}"
    # best.ckpt: the best validation score so far; last.ckpt: every epoch (Lightning's own
    # save_last only refreshes when a new best is saved, so a second callback keeps it current)
    best_cb = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode="min",
        every_n_epochs=cfg.val_every,
        save_top_k=1,
    )
    last_cb = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="last",
        monitor=None,
        every_n_epochs=1,
        save_top_k=1,
        save_on_train_epoch_end=True,
    )
    # each (re)start logs to a new logs/version_k folder: Lightning's CSV writer deletes an existing
    # metrics.csv in its folder, and nothing a user has may be lost; read_metrics joins them
    loggers: list = [CSVLogger(save_dir=str(out), name="logs")]
    if cfg.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard"))
    # last.ckpt first: if the disk fills while best.ckpt is written, --resume still finds last.ckpt
    callbacks: list = [last_cb, best_cb]
    if cfg.ema_decay > 0:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=cfg.ema_decay))
    if cfg.max_cpu_time is not None:
        callbacks.append(CpuTimeBudget(_seconds(cfg.max_cpu_time)))
    trainer = _trainer(cfg, out, callbacks, loggers)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        fit_started, fit_cpu_started = time.time(), time.process_time()
        trainer.fit(module, train_dl, val_dl, ckpt_path=ckpt_path)
        fit_time, fit_cpu = time.time() - fit_started, time.process_time() - fit_cpu_started
        best = best_cb.best_model_path or str(ckpt_dir / "last.ckpt")
        # the checkpoint's state_dict holds the averaged weights; without the callback, loading it
        # for the test keeps them (the callback would restore the raw weights it also stores)
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, _WeightAveraging)]
        warnings.filterwarnings("ignore", ".*callbacks used to create the checkpoint.*")
        test_metrics = trainer.test(module, test_dl, ckpt_path=best, verbose=False)
    results = {
        "task": cfg.task,
        "model": cfg.model,
        "config": cfg.to_dict(),
        "epochs_run": trainer.current_epoch,
        "train_steps": trainer.global_step,
        "fit_time_s": round(fit_time, 1),
        "fit_cpu_s": round(fit_cpu, 1),
        "best_checkpoint": portable_path(best),
        "best_val": float(best_cb.best_model_score) if best_cb.best_model_score is not None else None,
        "test": {k.removeprefix("test/"): float(v) for k, v in test_metrics[0].items()},
        "monitor": task.monitor,
        "published": task.published,
        "baselines": task.baselines() if task.baselines is not None else {},
        "n_parameters": sum(p.numel() for p in module.model.parameters()),
    }
    if task.symmetry is not None and trainer.is_global_zero and cfg.equivariance_trials > 0:
        from equiscale.train.equivariance_eval import equivariance_on_split

        eq_started = time.time()
        results["equivariance"] = equivariance_on_split(
            module.model,
            task.test,
            task.collate,
            task.symmetry,
            batch_size=cfg.eval_batch_size,
            trials=cfg.equivariance_trials,
            max_samples=cfg.equivariance_samples,
        )
        results["equivariance_time_s"] = round(time.time() - eq_started, 1)
        results["equivariance_check"] = {
            "trials": cfg.equivariance_trials,
            "samples": min(len(task.test), cfg.equivariance_samples or len(task.test)),
        }
    if trainer.is_global_zero:
        results.update(_provenance(cfg, started))
        write_json(out / "results.json", results)
        if task.plot is not None:
            results["plots"] = task.plot(module.model, task, out)
    return results


def _provenance(cfg: TrainConfig, started: float) -> dict[str, Any]:
    device = "cuda" if cfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
    return provenance(device, started, ndigits=1)


def _read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, state_dict)`` of an equiscale checkpoint, read with ``weights_only=True``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.stat().st_size == 0:
        raise ValueError(
            f"checkpoint {p} is empty (0 bytes): an interrupted copy? (equiscale "
            "writes checkpoints atomically, so its own are never empty)"
        )
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {p} could not be read safely: {reason}") from None
    try:
        return ckpt["hyper_parameters"]["config"], ckpt["state_dict"]
    except (KeyError, TypeError):
        raise ValueError(f"checkpoint {p} is not an equiscale checkpoint (no config/state_dict)") from None


_RESUME_FIELDS = ("task", "model", "model_args", "data_args")


def _check_resume_config(path: Path, cfg: TrainConfig) -> None:
    """A resumed run must train the same model on the same data as the checkpoint's run."""
    saved, _ = _read_checkpoint(path)
    own = cfg.to_dict()
    for field in _RESUME_FIELDS:
        if saved.get(field) != own.get(field):
            raise ValueError(
                f"--resume: {path} was trained with {field}={saved.get(field)!r}, this config has "
                f"{field}={own.get(field)!r}; resume with the checkpoint's {field} (or start a new "
                "out_dir, with init_from to reuse the weights)"
            )


def init_weights(module: TaskModule, path: str | os.PathLike) -> None:
    """Load a checkpoint's model weights into ``module`` (strictly): the ``init_from`` start."""
    config, state = _read_checkpoint(path)
    own = module.hparams["config"]
    if config.get("model") != own["model"]:
        raise ValueError(
            f"config field 'init_from': {path} holds a {config.get('model')!r} model, "
            f"this run trains {own['model']!r}"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(
            f"config field 'init_from': the weights in {path} do not fit this run's model_args ({first})"
        ) from None


def load_checkpoint(path: str | os.PathLike, **fields: Any) -> tuple[TaskModule, TrainConfig]:
    """Load a checkpoint safely (``torch.load(weights_only=True)``) into a fresh model; ``fields``
    replace config fields of the saved run (how it runs, not what it is: e.g. ``devices``)."""
    config, state = _read_checkpoint(path)
    cfg = TrainConfig(**{**copy.deepcopy(config), **fields})
    module = TaskModule(cfg.to_dict())
    module.load_state_dict(state)
    return module, cfg


def evaluate(
    checkpoint: str | os.PathLike,
    split: str = "test",
    batch_size: int | None = None,
    progress: bool = True,
    equivariance: bool = True,
    context_parallel: int = 1,
) -> dict[str, float]:
    """Evaluate a checkpoint on a split (``train``, ``val`` or ``test``) of its own task.

    With ``equivariance`` and a task that declares its symmetry, the metrics also hold the
    relative equivariance error per symmetry (``equiv_rotation``, ...; see
    :func:`equiscale.train.equivariance_eval.equivariance_on_split`).

    ``context_parallel = P > 1`` splits every sequence over ``P`` processes (gloo on CPU, NCCL on
    GPU; Lightning launches them, or they come from ``torchrun --nproc-per-node P``), so a length
    one process cannot hold is evaluated; the metrics equal one process's to float rounding. The
    equivariance check, which runs the whole model in one process, is then left out. Every
    process returns the metrics.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(
            f"batch_size must be an int >= 1 (or None for the config's eval_batch_size), got {batch_size!r}"
        )
    if isinstance(context_parallel, bool) or not isinstance(context_parallel, int) or context_parallel < 1:
        raise ValueError(f"context_parallel must be an int >= 1, got {context_parallel!r}")
    # however the checkpoint was trained (one process, DDP, context parallel: the same files), it
    # is evaluated as one process or as one group of P
    module, cfg = load_checkpoint(
        checkpoint,
        context_parallel=context_parallel,
        strategy="ddp" if context_parallel > 1 else "auto",
        devices=context_parallel,
        num_nodes=1,
    )
    task = build_task(cfg)
    module.task = task
    dataset = {"train": task.train, "val": task.val, "test": task.test}[split]
    size = cfg.eval_batch_size if batch_size is None else batch_size
    loader = DataLoader(dataset, batch_size=size, shuffle=False, collate_fn=task.collate)
    accelerator = "cpu" if not torch.cuda.is_available() else "auto"
    if context_parallel > 1:
        trainer = _trainer(
            TrainConfig(**{**cfg.to_dict(), "accelerator": accelerator, "progress": progress}),
            Path(checkpoint).parent,
            [],
            False,
        )
    else:
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_progress_bar=progress,
            enable_model_summary=False,
            inference_mode=False,
            precision=cfg.precision,
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        out = trainer.test(module, loader, verbose=False)[0]
    metrics = {k.removeprefix("test/"): float(v) for k, v in out.items()}
    if equivariance and task.symmetry is not None and context_parallel == 1:
        from equiscale.train.equivariance_eval import equivariance_on_split

        errs = equivariance_on_split(module.model, dataset, task.collate, task.symmetry, batch_size=size)
        metrics.update({f"equiv_{name}": value for name, value in errs.items()})
    return metrics
