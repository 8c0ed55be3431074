"""Training configuration: a dataclass, read from YAML (safe loader) and ``key=value`` overrides.

Unknown keys and wrongly typed values raise ``ValueError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TrainConfig", "load_config"]


@dataclass
class TrainConfig:
    """Everything a training run needs; every field can be set in YAML or with ``--set key=value``.

    Attributes:
        task: registered task name (``equiscale.registry.TASKS``), e.g. ``nbody``.
        data_args: keyword arguments of the task builder (e.g. ``{"n_train": 3000}``).
        model: registered model name (``equiscale.registry.MODELS``), e.g. ``egnn``.
        model_args: keyword arguments of the model class.
        lr, weight_decay: Adam(W) learning rate and weight decay.
        optimizer: ``adam`` or ``adamw``; amsgrad: use its AMSGrad variant (as MACE does).
        ema_decay: exponential moving average of the weights (0: off; MACE uses 0.99), by
            Lightning's ``EMAWeightAveraging``: validation, the best checkpoint, the test split and
            every checkpoint's ``state_dict`` use the averaged weights.
        scheduler: ``none``, ``cosine`` (to 0 over max_epochs) or ``plateau`` (halve on stalled val).
        batch_size, eval_batch_size: samples per step in training / evaluation.
        max_epochs: epochs; max_time: optional wall-clock budget ``"HH:MM:SS"`` (stops cleanly).
        max_cpu_time: optional budget ``"HH:MM:SS"`` of the training process's CPU time
            (``time.process_time``, validation included; stops cleanly after the step that
            reaches it): with one thread, the time one free core would take, so runs that share a
            busy machine still get equal compute.
        grad_clip: gradient-norm clip (0: off).
        seed: seeds torch, numpy, random and the data order.
        out_dir: run folder (checkpoints/, logs, results.json, plots).
        accelerator, devices, strategy, num_nodes: passed to Lightning (``auto``, ``cpu``, ``gpu``;
            ``ddp`` for data parallel; ``gloo`` backend is used on CPU).
        context_parallel: split every sequence over this many processes (consecutive ranks form
            one group; with ``ddp``, devices x num_nodes / context_parallel groups are data
            parallel). The model must take a ``shard`` (SE3HyenaNet) and the task predict one value
            per sequence (recall). Results and checkpoints are those of a single-process run.
        precision: Lightning precision (``32-true``, ``64-true``, ``bf16-mixed`` ...).
        val_every: validate (and checkpoint the best) every this many epochs.
        num_workers: DataLoader workers.
        log_every: log training loss every this many steps.
        tensorboard: also write TensorBoard logs (needs the ``tensorboard`` package).
        progress: show a progress bar.
        init_from: optional checkpoint whose model weights start the run (fine-tuning, or the next
            stage of a curriculum): weights only; epoch, optimiser and scheduler start afresh. The
            model and its arguments must match (the state dict is loaded strictly). Ignored when a
            run is resumed, since the resumed checkpoint holds the weights.
        soft_equivariance: optional penalty on the model's equivariance error (Kim et al. 2023),
            symmetry -> strength, e.g. ``{rotation: 0.1, permutation: 0.1}``, plus the options
            ``schedule`` (``auto``, ``warmup``, ``constant``), ``warmup_steps``, ``ema``,
            ``max_ratio``, ``translation_scale``; see ``equiscale.train.soft_equivariance``. The
            task must declare its symmetry (n-body does). Empty: off.
        equivariance_trials: random group elements per batch and symmetry in the float64
            equivariance check of the trained model on the test split (0: no check).
        equivariance_samples: check only the first this many test samples (None: all); the check
            runs the model 4 x trials times per sample in float64, which on thousands of atoms
            costs more than a short training run.
    """

    task: str = "nbody"
    data_args: dict[str, Any] = field(default_factory=dict)
    model: str = "egnn"
    model_args: dict[str, Any] = field(default_factory=dict)
    lr: float = 5e-4
    weight_decay: float = 1e-12
    optimizer: str = "adam"
    amsgrad: bool = False
    ema_decay: float = 0.0
    scheduler: str = "none"
    batch_size: int = 100
    eval_batch_size: int = 500
    max_epochs: int = 100
    max_time: str | None = None
    max_cpu_time: str | None = None
    grad_clip: float = 0.0
    seed: int = 0
    out_dir: str = "runs/default"
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    context_parallel: int = 1
    precision: str = "32-true"
    val_every: int = 1
    num_workers: int = 0
    log_every: int = 10
    tensorboard: bool = False
    progress: bool = True
    init_from: str | None = None
    soft_equivariance: dict[str, Any] = field(default_factory=dict)
    equivariance_trials: int = 8
    equivariance_samples: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = {
                "int": int,
                "float": (int, float),
                "str": str,
                "bool": bool,
                "dict[str, Any]": dict,
            }.get(str(f.type))
            if expected is not None and (
                not isinstance(value, expected) or (expected is int and isinstance(value, bool))
            ):
                raise ValueError(
                    f"config field {f.name!r} must be {f.type}, got {value!r} ({type(value).__name__})"
                )
        positive = (
            "lr",
            "batch_size",
            "eval_batch_size",
            "max_epochs",
            "val_every",
            "log_every",
            "num_nodes",
            "context_parallel",
        )
        for name in ("lr", "weight_decay", "grad_clip", "ema_decay"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"config field {name!r} must be finite, got {getattr(self, name)!r}")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"config field {name!r} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "grad_clip", "num_workers", "equivariance_trials"):
            if getattr(self, name) < 0:
                raise ValueError(f"config field {name!r} must be >= 0, got {getattr(self, name)!r}")
        from equiscale import registry

        for name, table in (("task", registry.TASKS), ("model", registry.MODELS)):
            if getattr(self, name) not in table:
                raise ValueError(
                    f"config field {name!r} must be one of {sorted(table)}, got {getattr(self, name)!r}"
                )
        if self.accelerator not in ("auto", "cpu", "gpu", "cuda"):
            raise ValueError(
                f"config field 'accelerator' must be 'auto', 'cpu', 'gpu' or 'cuda', got {self.accelerator!r}"
            )
        devices_ok = (
            self.devices == "auto"
            or (isinstance(self.devices, int) and not isinstance(self.devices, bool) and self.devices >= 1)
            or (
                isinstance(self.devices, list)
                and self.devices
                and all(isinstance(d, int) and d >= 0 for d in self.devices)
            )
        )
        if not devices_ok:
            raise ValueError(
                f"config field 'devices' must be an int >= 1, a list of device indices or "
                f"'auto', got {self.devices!r}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"config field 'ema_decay' must be in [0, 1), got {self.ema_decay!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"config field 'optimizer' must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.scheduler not in ("none", "cosine", "plateau"):
            raise ValueError(
                f"config field 'scheduler' must be 'none', 'cosine' or 'plateau', got {self.scheduler!r}"
            )
        if self.soft_equivariance:  # strengths and options, checked on a stand-in symmetry
            from equiscale.train.soft_equivariance import SoftEquivarianceLoss
            from equiscale.train.task import SymmetrySpec

            SoftEquivarianceLoss.from_config(
                SymmetrySpec({"x": "position"}, "position"), self.soft_equivariance
            )
        if self.context_parallel > 1:
            if not self.strategy.startswith("ddp"):
                raise ValueError(
                    f"config field 'context_parallel' ({self.context_parallel}) needs "
                    f"strategy 'ddp' (one process per block), got {self.strategy!r}"
                )
            if not isinstance(self.devices, int) or (self.devices * self.num_nodes) % self.context_parallel:
                raise ValueError(
                    f"config field 'context_parallel' ({self.context_parallel}) must "
                    f"divide the number of processes (devices x num_nodes = "
                    f"{self.devices!r} x {self.num_nodes})"
                )
        samples = self.equivariance_samples
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise ValueError(
                f"config field 'equivariance_samples' must be an int >= 1 or None (all), got {samples!r}"
            )
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ValueError(f"config field 'init_from' must be a checkpoint path, got {self.init_from!r}")
        for name in ("max_time", "max_cpu_time"):
            value = getattr(self, name)
            if value is None:
                continue
            parts = value.split(":") if isinstance(value, str) else []
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise ValueError(f"config field {name!r} must be 'HH:MM:SS', got {value!r}")
            if int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2]) <= 0:
                raise ValueError(f"config field {name!r} must be longer than 00:00:00, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def _set_nested(d: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise ValueError(f"cannot set {dotted!r}: {k!r} is not a mapping")
    d[keys[-1]] = value


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    **fields: Any,
) -> TrainConfig:
    """Read a YAML config (if given), apply ``key=value`` overrides (dotted keys reach into
    ``data_args``/``model_args``) and explicit ``fields``; validate and return it."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {p} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping, got {type(loaded).__name__}")
        raw.update(loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, _, text = item.partition("=")
        _set_nested(raw, key.strip(), _parse_value(text.strip()))
    for key, value in fields.items():
        if value is not None:
            raw[key] = value
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
    if isinstance(raw.get("lr"), str) or isinstance(raw.get("weight_decay"), str):
        for k in ("lr", "weight_decay"):
            if isinstance(raw.get(k), str):
                try:
                    raw[k] = float(raw[k])
                except ValueError:
                    raise ValueError(f"config field {k!r} must be a number, got {raw[k]!r}") from None
    return TrainConfig(**raw)
