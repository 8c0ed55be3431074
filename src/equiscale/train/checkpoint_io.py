"""Checkpoint files that a kill can never leave half-written, loaded without running pickled code.

``save_checkpoint`` writes to a temporary file in the same folder, fsyncs and renames it over the
target (``os.replace`` is atomic on POSIX); ``load_checkpoint`` uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from equiscale.provenance import atomic_open

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with atomic writes and safe loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_open(path) as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise ValueError(f"checkpoint {path} could not be read safely: {exc}") from None
