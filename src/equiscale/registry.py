"""Name -> implementation tables for the command line and the trainer.

Entries are import strings ("module:attribute"), imported only when used, so adding a model or a
task never slows down ``import equiscale`` and the lower layers never import the upper ones.

- ``MODELS``: ``name -> "module:Class"``; the class is built as ``Class(**model_args)``. Its
  ``forward(batch: dict[str, Tensor])`` returns the prediction the task's loss expects.
- ``TASKS``: ``name -> "module:build_task"``; ``build_task(**data_args) -> equiscale.train.TaskData``.
- ``BENCHES`` / ``DATASETS``: ``name -> "module"``; the module defines
  ``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> dict``; they back
  ``equiscale bench NAME`` and ``equiscale data NAME``.
"""

from __future__ import annotations

import importlib
from typing import Any

MODELS: dict[str, str] = {
    "gauntnet": "equiscale.models.gaunt_net:GauntNet",
    "egnn": "equiscale.models.egnn:EGNN",
    "egnn_energy": "equiscale.models.egnn_energy:EGNNEnergy",
    "mlp": "equiscale.models.baselines:MLPBaseline",
    "gnn": "equiscale.models.baselines:GNNBaseline",
    "e2former": "equiscale.models.e2former:E2Former",
    "hybrid": "equiscale.models.hybrid:HybridNet",
    "hybrid_dynamics": "equiscale.models.hybrid:HybridDynamics",
    "se3hyena": "equiscale.models.se3_hyena:SE3HyenaNet",
    "hyena": "equiscale.models.se3_hyena:HyenaNet",
    "eq_transformer": "equiscale.models.equivariant_transformer:EquivariantTransformer",
    "frame_averaging": "equiscale.models.frame_averaging:FrameAveraging",
    "canonicalize": "equiscale.models.canonicalize:Canonicalize",
}

TASKS: dict[str, str] = {
    "nbody": "equiscale.train.tasks.nbody:nbody_task",
    "qm9": "equiscale.train.tasks.molecules:qm9_task",
    "md": "equiscale.train.tasks.molecules:md_task",
    "recall": "equiscale.train.tasks.recall:recall_task",
    "protein": "equiscale.train.tasks.protein:protein_task",
    "protein_dynamics": "equiscale.train.tasks.protein:protein_dynamics_task",
}

BENCHES: dict[str, str] = {
    "tp": "equiscale.bench.tp",
    "reliability": "equiscale.bench.reliability",
    "conv": "equiscale.bench.conv",
    "context": "equiscale.bench.context",
    "context-parallel": "equiscale.bench.context_parallel",
    "mace": "equiscale.bench.mace",
    "mlip": "equiscale.bench.mlip_table",
    "protein-table": "equiscale.bench.protein_table",
    "md-speed": "equiscale.bench.md_speed",
    "symmetry": "equiscale.bench.symmetry",
    "protein-scale": "equiscale.bench.protein_scale",
}

DATASETS: dict[str, str] = {
    "md": "equiscale.data.md",
    "nbody": "equiscale.data.nbody",
    "protein": "equiscale.data.protein",
}


def load(table: dict[str, str], name: str, what: str) -> Any:
    """Import the object registered under ``name`` in ``table``; unknown names raise ValueError."""
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(sorted(table))}")
    target = table[name]
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module
