"""The batch that atomistic models (E2Former, GauntNet) read, and its checks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["check_atoms_batch", "structure_index", "atoms_graph", "energy_and_forces"]


def check_atoms_batch(batch: dict[str, Tensor], embed: nn.Embedding) -> tuple[Tensor, Tensor]:
    """Validate ``batch["pos"] [n_atoms, 3]`` and ``batch["z"] [n_atoms]`` against the model whose
    element embedding is ``embed`` (device, dtype unless autocasting, element range); return
    ``(pos, z)`` with ``z`` as int64. Errors name the key and the expected vs actual value."""
    for key in ("pos", "z"):
        if key not in batch:
            raise ValueError(f"batch must contain {key!r}; got keys {sorted(batch)}")
    pos, z = batch["pos"], batch["z"]
    if not isinstance(z, Tensor) or z.dtype not in (
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
    ):
        # a float 1.7 would be truncated to element 1, a bool to 0/1: both silent wrong answers
        raise TypeError(
            f"batch['z'] must be an integer tensor of element indices, got "
            f"{getattr(z, 'dtype', type(z).__name__)}"
        )
    z = z.long()
    if pos.dim() != 2 or pos.shape[1] != 3 or z.shape != (pos.shape[0],):
        raise ValueError(
            f"pos must be [n_atoms, 3] and z [n_atoms], got {tuple(pos.shape)} and {tuple(z.shape)}"
        )
    weight = embed.weight
    if pos.device != weight.device:
        raise ValueError(f"pos must be on the model's device {weight.device}, got {pos.device}")
    if pos.dtype != weight.dtype and not torch.is_autocast_enabled(pos.device.type):
        raise TypeError(f"pos must have the model's dtype {weight.dtype}, got {pos.dtype}")
    n_el = embed.num_embeddings
    if z.numel() and not torch.compiler.is_compiling() and (int(z.min()) < 0 or int(z.max()) >= n_el):
        raise ValueError(f"z must lie in [0, num_elements={n_el}), got [{int(z.min())}, {int(z.max())}]")
    return pos, z


def structure_index(batch: dict[str, Tensor], pos: Tensor) -> tuple[Tensor, int]:
    """``(batch["batch"] as int64 [n_atoms] (zeros for one structure), number of structures)``."""
    index = batch.get("batch")
    n = pos.shape[0]
    if index is None:  # one structure: no data-dependent count (torch.export traces this)
        return torch.zeros(n, dtype=torch.long, device=pos.device), (1 if n else 0)
    idx = index.long()
    return idx, (int(idx.max()) + 1 if n else 0)


def atoms_graph(batch: dict[str, Tensor], pos: Tensor, cutoff: float) -> tuple[Tensor, Tensor | None]:
    """``(edge_index [2, E], shifts [E, 3] or None)``: the batch's own graph when it has
    ``"edge_index"``, else :func:`equiscale.ops.neighbor_list` at ``cutoff`` (periodic with
    ``"cell"`` and ``"pbc"``)."""
    from equiscale.ops.neighbors import neighbor_list

    if "edge_index" in batch:
        return batch["edge_index"], batch.get("shifts")
    nb = neighbor_list(
        pos.detach(), cutoff, batch=batch.get("batch"), cell=batch.get("cell"), pbc=batch.get("pbc")
    )
    return nb.edge_index, nb.shifts if batch.get("cell") is not None else None


def energy_and_forces(
    e_atom: Tensor, idx: Tensor, n_struct: int, pos: Tensor, *, compute_forces: bool, create_graph: bool
) -> dict[str, Tensor]:
    """``{"energy": [B] = per-structure sum of e_atom [N], "forces": -dE/dpos [N, 3]}`` (forces
    when ``compute_forces``; ``create_graph`` while training, so force losses train)."""
    energy = e_atom.new_zeros(n_struct).index_add(0, idx, e_atom)  # [B]
    out = {"energy": energy}
    if compute_forces:
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph, allow_unused=True)
        out["forces"] = -grad if grad is not None else torch.zeros_like(pos)
    return out
