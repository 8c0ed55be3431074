"""Energy models as plain tensor functions, for ``torch.compile`` and ``torch.export``.

The models read a dict batch and build their own graph; deployment tools want a function of
tensors with the graph given. :class:`EnergyFunction` is that function:

    energy [1] = model({"pos": pos [N, 3], "z": z [N], "edge_index": edge_index [2, E],
                        "shifts": shifts [E, 3]})["energy"]      (one structure)

- :func:`compile_energy_forces`: ``(energy, forces)`` with ``forces = -dE/dpos`` taken by
  ``torch.func.grad`` *inside* the compiled graph, so a force loss backpropagates through one
  compiled graph (PyTorch's compiled autograd has no double backward, which
  ``torch.autograd.grad(create_graph=True)`` on a compiled energy would need). ``fullgraph=True``:
  any graph break is an error.
- :func:`export_energy`: ``torch.export`` of the energy with the numbers of atoms and edges
  dynamic; ``torch.export.save`` / ``load`` it and take forces with ``torch.autograd.grad`` on the
  loaded program, with no code of ours (:func:`exported_energy_forces` shows how).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["EnergyFunction", "compile_energy_forces", "export_energy", "exported_energy_forces"]


class EnergyFunction(nn.Module):
    """``forward(pos [N, 3], z [N], edge_index [2, E], shifts [E, 3]) -> energy [1]`` of an
    equiscale energy model (E2Former, GauntNet, EGNNEnergy) for one structure; the model's own
    force computation is switched off (forces are the caller's gradient)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not hasattr(model, "compute_forces"):
            raise TypeError(
                f"model must be an energy model with a compute_forces flag, got {type(model).__name__}"
            )
        self.model = model
        self.model.compute_forces = False

    def forward(self, pos: Tensor, z: Tensor, edge_index: Tensor, shifts: Tensor) -> Tensor:
        return self.model({"pos": pos, "z": z, "edge_index": edge_index, "shifts": shifts})["energy"]


def compile_energy_forces(model: nn.Module, **compile_kwargs) -> Callable[..., tuple[Tensor, Tensor]]:
    """``f(pos, z, edge_index, shifts) -> (energy [1], forces [N, 3])``, one compiled graph
    (``torch.compile(fullgraph=True, **compile_kwargs)``; data-dependent sizes such as the number
    of neighbour slots are traced as symbolic integers)."""
    energy = EnergyFunction(model)

    def energy_forces(pos: Tensor, z: Tensor, edge_index: Tensor, shifts: Tensor):
        def total(p: Tensor) -> tuple[Tensor, Tensor]:
            e = energy(p, z, edge_index, shifts)
            return e.sum(), e

        grad, e = torch.func.grad(total, has_aux=True)(pos)
        return e, -grad

    compiled = torch.compile(energy_forces, fullgraph=True, **compile_kwargs)

    def run(pos: Tensor, z: Tensor, edge_index: Tensor, shifts: Tensor) -> tuple[Tensor, Tensor]:
        with torch._dynamo.config.patch(capture_scalar_outputs=True):  # noqa: SLF001
            return compiled(pos, z, edge_index, shifts)

    return run


def export_energy(
    model: nn.Module, pos: Tensor, z: Tensor, edge_index: Tensor, shifts: Tensor | None = None
) -> torch.export.ExportedProgram:
    """``torch.export`` of :class:`EnergyFunction` at the example inputs, with the numbers of atoms
    (>= 2) and edges (>= 2) dynamic. Put the model in ``eval()`` mode first."""
    if shifts is None:
        shifts = pos.new_zeros(edge_index.shape[1], 3)
    atoms, edges = torch.export.Dim("atoms", min=2), torch.export.Dim("edges", min=2)
    return torch.export.export(
        EnergyFunction(model),
        (pos, z, edge_index, shifts),
        dynamic_shapes=({0: atoms}, {0: atoms}, {1: edges}, {0: edges}),
    )


def exported_energy_forces(
    program: torch.export.ExportedProgram, pos: Tensor, z: Tensor, edge_index: Tensor, shifts: Tensor
) -> tuple[Tensor, Tensor]:
    """``(energy, -dE/dpos)`` of an exported (or loaded) energy: plain ``torch.autograd``."""
    pos = pos.detach().requires_grad_(True)
    energy = program.module()(pos, z, edge_index, shifts)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -grad
