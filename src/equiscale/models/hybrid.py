"""HybridNet: local Wigner-6j blocks (E2Former) interleaved with SE(3)-Hyena blocks over the atoms
in topology order, for energies and forces of large biomolecules.

    x^0_i = [Embed(z_i), 0, ..., 0]                                       [N, (L+1)^2, C]
    for t < T:
        x <- E2FormerBlock_t(x)                      neighbours within r_c, O(N) (cell lists)
        (s, v) <- (x_i,l=0,  x_i,l=1 + w_t (r_i - rbar))                  [N, C], [N, 3, C]
        (s, v) <- SE3HyenaBlock_t(s, v)              over the atoms of each structure in
                                                     topology order, O(N log N)
        x_i,l=0 <- s_i,   x_i,l=1 <- v_i             (degrees l >= 2 pass unchanged)
    E = sum_i ( MLP(Norm(x^T)_i,l=0) + e_ref(z_i) )                       per structure
    F_i = -dE/dr_i                                                        (autograd)

Optional global term (``long_range="coulomb"``): learned charges q_i = Lin(Norm(x^T)_i,l=0),
made neutral per structure (q_i - mean_b q), with the exact pair sum

    E_coul = k_e sum_{i<j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij,      k_e = 14.3996 eV A / e^2

added to E (Gaussian charges of width ``coulomb_sigma``: finite at r -> 0, 1/r beyond a few
sigma). The sum is direct, O(N^2) time and, for energy and forces, O(block N) memory per structure
(row blocks under activation checkpointing): exact. ``long_range="coulomb_mesh"`` computes the same
energy by a particle-mesh split (:mod:`equiscale.ops.coulomb`): O(N + M log M) for M mesh points,
to the mesh's error, not exact, and with invariance to the same error.

``rbar`` is the mean position of the structure, ``w_t [C]`` a learned weight per vector channel:
the Hyena block sees the centred positions as well as the local features, so its cross- and
dot-product long convolutions can combine geometry across the whole sequence. The l = 1 block of
``x`` holds the coefficients of e3nn's real spherical harmonics of degree 1, proportional to
(x, y, z), so it is used as Cartesian vectors as it is.

Symmetry: with ``parity="e3"`` (default; the E2Former paths of E(3) parity and Hyena's
parity-restoring cross products) the energy is invariant and the forces equivariant under
rotations, reflections and translations; ``parity="se3"`` drops reflections (Hyena's cross products
are then pseudovectors). The Hyena blocks are sequence operators: the model is not invariant
under a permutation of the atoms, only under a consistent relabelling of the topology order
(``batch`` must list each structure's atoms contiguously, in that order).

``blocks="global"`` drops the E2Former blocks (x^0 goes straight to the Hyena blocks, which then see
the atoms only through their embeddings and centred positions): SE(3)-Hyena alone as an energy
model, the "global only" peer of the hybrid at the same width and depth. ``blocks="attention"``
does the same with equivariant multi-head attention (:class:`~equiscale.nn.attention.EquivariantAttention`,
O(N^2) time) as the token mixer of those blocks in place of the Hyena operator: the equivariant
transformer as an energy model, everything else shared. Attention without positional encodings
is also invariant under any permutation of the atoms. ``blocks="hybrid_attention"`` keeps the
E2Former blocks and swaps only the global mixer: the hybrid's O(N^2) counterpart.

``forward(batch)`` takes ``pos [n_atoms, 3]``, ``z [n_atoms]``, ``batch [n_atoms]`` (structure
index, sorted; optional for one structure) and returns ``{"energy": [B], "forces": [n_atoms, 3]}``,
the batch layout of :class:`~equiscale.models.e2former.E2Former`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from equiscale.models.atoms_batch import atoms_graph, check_atoms_batch, structure_index
from equiscale.nn.attention import EquivariantAttention
from equiscale.nn.e2former import E2FormerBlock, EquivariantRMSNorm
from equiscale.nn.hyena import SE3HyenaBlock
from equiscale.ops.coulomb import COULOMB_EV_A, coulomb_energy, coulomb_energy_mesh

__all__ = ["HybridNet", "HybridDynamics", "coulomb_energy", "coulomb_energy_mesh", "COULOMB_EV_A"]

PARITIES = {"e3": ("even", "e3"), "se3": ("even", "se3")}  # parity -> (E2Former, Hyena)
LONG_RANGE = ("none", "coulomb", "coulomb_mesh")
BLOCKS = ("hybrid", "global", "attention", "hybrid_attention")
_LOCAL = ("hybrid", "local", "hybrid_attention")  # the variants with E2Former blocks
_ATTENTION = ("attention", "hybrid_attention")  # the variants whose global mixer is attention


def _int_at_least_1(**values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


class _LocalGlobalStack(nn.Module):
    """The trunk shared by :class:`HybridNet` and :class:`HybridDynamics`: ``num_layers`` pairs of
    (E2Former block within ``cutoff``, SE(3)-Hyena block over each structure's atoms in order);
    ``blocks`` "hybrid" keeps both, "global" only the Hyena blocks, "attention" only global blocks
    with attention as mixer, "hybrid_attention" both with attention as mixer, "local" only the
    E2Former blocks. Attribute names (local, glob,
    pos_weight) are those of the state dicts."""

    def __init__(
        self,
        channels: int,
        lmax: int,
        num_layers: int,
        *,
        allowed_blocks: tuple[str, ...],
        heads: int = 4,
        num_radial: int = 16,
        cutoff: float = 5.0,
        ffn_multiplier: int = 2,
        centring: str = "target",
        filter_hidden: int = 32,
        mlp_ratio: int = 2,
        length_norm: bool = True,
        parity: str = "e3",
        blocks: str = "hybrid",
        checkpoint_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.checkpoint_blocks = bool(checkpoint_blocks)
        if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 1:
            raise ValueError(
                f"lmax must be an int >= 1 (the Hyena blocks read the l = 1 features), got {lmax!r}"
            )
        _int_at_least_1(channels=channels, heads=heads, num_layers=num_layers, num_radial=num_radial)
        if parity not in PARITIES:
            raise ValueError(f"parity must be one of {sorted(PARITIES)}, got {parity!r}")
        if not (isinstance(cutoff, (int, float)) and cutoff > 0):
            raise ValueError(f"cutoff must be a number > 0, got {cutoff!r}")
        if blocks not in allowed_blocks:
            raise ValueError(f"blocks must be one of {allowed_blocks}, got {blocks!r}")
        local_parity, global_parity = PARITIES[parity]
        self.blocks, self.num_layers = blocks, num_layers
        self.lmax, self.channels, self.cutoff, self.parity = lmax, channels, float(cutoff), parity
        self.local = nn.ModuleList(
            E2FormerBlock(
                lmax,
                channels,
                heads=heads,
                num_radial=num_radial,
                cutoff=cutoff,
                ffn_multiplier=ffn_multiplier,
                parity=local_parity,
                centring=centring,
            )
            for _ in range(num_layers if blocks in _LOCAL else 0)
        )
        if blocks in _ATTENTION:
            self.glob = nn.ModuleList(
                SE3HyenaBlock(
                    channels,
                    channels,
                    mlp_ratio=mlp_ratio,
                    mixer=EquivariantAttention(channels, channels, heads),
                )
                for _ in range(num_layers)
            )
        else:
            self.glob = nn.ModuleList(
                SE3HyenaBlock(
                    channels,
                    channels,
                    mlp_ratio=mlp_ratio,
                    causal=False,
                    parity=global_parity,
                    filter_hidden=filter_hidden,
                    length_norm=length_norm,
                )
                for _ in range(num_layers if blocks != "local" else 0)
            )
        # hybrid: 0 at initialisation (the Hyena blocks start from the local features); global
        # only: 1, since with 0 the energy would not depend on the positions at all and the
        # gradient of a force loss with respect to this weight would be exactly 0 (a fixed point:
        # the forces stayed at 0 through training)
        init = torch.zeros if blocks in ("hybrid", "hybrid_attention") else torch.ones
        self.pos_weight = nn.Parameter(init(num_layers, channels))
        self.norm = EquivariantRMSNorm(lmax, channels)

    def _global(self, t: int, x: Tensor, pos: Tensor, counts: list[int]) -> Tensor:
        """Hyena block ``t`` over each structure's atoms: ``x [N, (L+1)^2, C] -> same``."""
        outs = []
        for xs, ps in zip(x.split(counts), pos.split(counts)):
            centred = ps - ps.mean(0, keepdim=True)  # [n, 3]
            s = xs[:, 0]  # [n, C]
            v = xs[:, 1:4] + centred[:, :, None] * self.pos_weight[t]  # [n, 3, C]
            s, v = self.glob[t](s[None], v[None])  # one sequence: [1, n, C], [1, n, 3, C]
            outs.append(torch.cat([s[0, :, None], v[0], xs[:, 4:]], dim=1))
        return torch.cat(outs) if outs else x

    def trunk(
        self, x: Tensor, pos: Tensor, batch: dict[str, Tensor], idx: Tensor, counts: list[int]
    ) -> Tensor:
        """``x [N, (L+1)^2, C] -> Norm(x^T)``, the same shape (``batch`` for the neighbour list)."""
        if self.blocks in _LOCAL:
            edge_index, shifts = atoms_graph(batch, pos, self.cutoff)
        ckpt = self.checkpoint_blocks and torch.is_grad_enabled()
        for t in range(self.num_layers):
            if self.blocks in _LOCAL:
                if ckpt:
                    x = checkpoint(
                        self.local[t], x, pos, edge_index, batch=idx, shifts=shifts, use_reentrant=False
                    )
                else:
                    x = self.local[t](x, pos, edge_index, batch=idx, shifts=shifts)
            if self.blocks != "local":
                if ckpt:
                    x = checkpoint(self._global, t, x, pos, counts, use_reentrant=False)
                else:
                    x = self._global(t, x, pos, counts)
        return self.norm(x)


class HybridNet(_LocalGlobalStack):
    """Energy (and force) model; see the module docstring.

    Args:
        num_elements: size of the atomic-number embedding (z < num_elements).
        channels, lmax, num_layers: width C, degree L (>= 1), number T of (local, global) pairs.
        heads, num_radial, cutoff, ffn_multiplier, centring: of the E2Former blocks (cutoff r_c, A;
            defaults 4, 16, 5.0, 2, "target"), keywords.
        filter_hidden, mlp_ratio, length_norm: of the SE(3)-Hyena blocks (non-causal; defaults 32,
            2, True), keywords.
        long_range: "none", "coulomb" for the learned-charge Coulomb term (module docstring), or
            "coulomb_mesh" for the same energy by the particle-mesh sum
            (:func:`equiscale.ops.coulomb.coulomb_energy_mesh`: O(N + M log M), to a mesh error).
        blocks: "hybrid" (local and global blocks), "global" (SE(3)-Hyena blocks only) or
            "attention" (the global blocks with equivariant attention as mixer, no local blocks),
            "hybrid_attention" (the hybrid with attention in place of the Hyena operator).
        checkpoint_blocks: (keyword, default False) run every block under activation
            checkpointing when gradients are recorded (forces, training): autograd keeps each
            block's input, not its activations, and recomputes them in the backward pass (less
            memory, one more forward of each block).
        coulomb_sigma: width (A) of the Gaussian charges of that term.
        mesh_spacing: mesh spacing (A) of "coulomb_mesh" (the smoothing width is then
            max(coulomb_sigma, 2 mesh_spacing)).
        parity: (keyword, default "e3") "e3" (E(3)-equivariant) or "se3" (no reflections).
        compute_forces: return forces = -dE/dpos.
        energy_scale, energy_shift: per-atom output scale and shift (data statistics).
    """

    def __init__(
        self,
        num_elements: int = 100,
        channels: int = 32,
        lmax: int = 1,
        num_layers: int = 2,
        *,
        long_range: str = "none",
        coulomb_sigma: float = 1.0,
        mesh_spacing: float = 0.5,
        blocks: str = "hybrid",
        compute_forces: bool = True,
        energy_scale: float = 1.0,
        energy_shift: float = 0.0,
        **trunk: Any,
    ) -> None:
        _int_at_least_1(num_elements=num_elements)
        super().__init__(channels, lmax, num_layers, blocks=blocks, allowed_blocks=BLOCKS, **trunk)
        if long_range not in LONG_RANGE:
            raise ValueError(f"long_range must be one of {LONG_RANGE}, got {long_range!r}")
        if not (isinstance(coulomb_sigma, (int, float)) and coulomb_sigma > 0):
            raise ValueError(f"coulomb_sigma must be a number > 0, got {coulomb_sigma!r}")
        if not (
            isinstance(mesh_spacing, (int, float)) and not isinstance(mesh_spacing, bool) and mesh_spacing > 0
        ):
            raise ValueError(f"mesh_spacing must be a number > 0, got {mesh_spacing!r}")
        self.long_range, self.coulomb_sigma = long_range, float(coulomb_sigma)
        self.mesh_spacing = float(mesh_spacing)
        self.compute_forces = compute_forces
        self.energy_scale, self.energy_shift = float(energy_scale), float(energy_shift)
        self.embed = nn.Embedding(num_elements, channels)
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
        self.atom_ref = nn.Embedding(num_elements, 1)
        nn.init.zeros_(self.atom_ref.weight)
        self.charge_head = nn.Linear(channels, 1) if long_range != "none" else None

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        pos, z = check_atoms_batch(batch, self.embed)
        if batch.get("cell") is not None:
            raise ValueError(
                "HybridNet takes non-periodic structures (it centres positions per "
                "structure); the batch has a 'cell'"
            )
        idx, n_struct = structure_index(batch, pos)
        if idx.numel() > 1 and bool((idx[1:] < idx[:-1]).any()):
            raise ValueError(
                "batch['batch'] must be sorted: each structure's atoms contiguous, in topology order"
            )
        counts = torch.bincount(idx, minlength=n_struct).tolist()
        n = pos.shape[0]
        with torch.enable_grad():
            if self.compute_forces and not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            x = self.embed(z)[:, None, :]  # [N, 1, C]
            x = torch.cat([x, x.new_zeros(n, (self.lmax + 1) ** 2 - 1, self.channels)], dim=1)
            if self.blocks in _ATTENTION and self.compute_forces and self.training:
                # a force loss differentiates the forces again; SDPA's fused CPU kernel has no
                # double backward, its math kernel (plain differentiable ops) does
                with sdpa_kernel(SDPBackend.MATH):
                    x = self.trunk(x, pos, batch, idx, counts)
            else:
                x = self.trunk(x, pos, batch, idx, counts)
            e_atom = self.head(x[:, 0]).squeeze(-1) * self.energy_scale + self.energy_shift
            e_atom = e_atom + self.atom_ref(z).squeeze(-1)
            extra = None
            if self.charge_head is not None:
                q = self.charge_head(x[:, 0]).squeeze(-1)  # [N]
                size = torch.tensor(counts, dtype=q.dtype, device=q.device).clamp_min(1)  # [B]
                q = q - (q.new_zeros(n_struct).index_add(0, idx, q) / size)[idx]  # neutral per structure
                if self.long_range == "coulomb":
                    extra = coulomb_energy(q, pos, counts, self.coulomb_sigma)
                else:
                    extra = coulomb_energy_mesh(q, pos, counts, self.coulomb_sigma, spacing=self.mesh_spacing)
            energy = e_atom.new_zeros(n_struct).index_add(0, idx, e_atom)  # [B]
            if extra is not None:
                energy = energy + extra
            out = {"energy": energy}
            if self.compute_forces:
                (grad,) = torch.autograd.grad(
                    energy.sum(), pos, create_graph=self.training, allow_unused=True
                )
                out["forces"] = -grad if grad is not None else torch.zeros_like(pos)
            if extra is not None:
                out["charges"] = q
            return out


class HybridDynamics(_LocalGlobalStack):
    """Positions ``horizon`` frames ahead from the n-body layout of
    :func:`~equiscale.train.tasks.protein.protein_dynamics_task`: ``loc, vel [B, N, 3]``,
    ``charges [B, N]`` (atoms in topology order) -> ``[B, N, 3]``::

        x^0_i = [Lin(q_i), vel_i w, 0, ...]                       [N, (L+1)^2, C]
        x^T   = trunk(x^0)                                         (as HybridNet)
        pred_i = loc_i + sum_c x^T_i,l=1,c  a_c                   (a = 0 at initialisation: copy)

    ``blocks``: "hybrid", "global", "attention", "hybrid_attention" (as HybridNet) or "local"
    (E2Former blocks only: the local peer). The other keyword arguments (``heads``,
    ``num_radial``, ``cutoff``, ``ffn_multiplier``, ``centring``, ``filter_hidden``, ``mlp_ratio``,
    ``length_norm``, ``parity``, ``checkpoint_blocks``) and their defaults are :class:`HybridNet`'s.
    Symmetry as :class:`HybridNet` (vel is a polar vector; the prediction moves with translations
    of loc).
    """

    def __init__(
        self, channels: int = 32, lmax: int = 1, num_layers: int = 2, *, blocks: str = "hybrid", **trunk: Any
    ) -> None:
        super().__init__(
            channels, lmax, num_layers, blocks=blocks, allowed_blocks=(*BLOCKS, "local"), **trunk
        )
        self.embed_q = nn.Linear(1, channels)
        self.vel_weight = nn.Parameter(torch.full((channels,), 0.1))
        self.out = nn.Parameter(torch.zeros(channels))

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        missing = [k for k in ("loc", "vel", "charges") if k not in batch]
        if missing:
            raise ValueError(f"batch must hold loc, vel and charges; missing {missing}")
        loc, vel, q = batch["loc"], batch["vel"], batch["charges"]
        if loc.dim() != 3 or loc.shape[-1] != 3 or vel.shape != loc.shape or q.shape != loc.shape[:2]:
            raise ValueError(
                f"loc and vel must be [B, N, 3] and charges [B, N], got {tuple(loc.shape)}, "
                f"{tuple(vel.shape)}, {tuple(q.shape)}"
            )
        b, n = loc.shape[:2]
        pos = loc.reshape(b * n, 3)
        idx = torch.arange(b, device=loc.device).repeat_interleave(n)
        x = torch.cat(
            [
                self.embed_q(q.reshape(b * n, 1))[:, None],  # [BN, 1, C]
                vel.reshape(b * n, 3, 1) * self.vel_weight,  # [BN, 3, C]
                loc.new_zeros(b * n, (self.lmax + 1) ** 2 - 4, self.channels),
            ],
            dim=1,
        )
        x = self.trunk(x, pos, {"pos": pos, "batch": idx}, idx, [n] * b)
        return loc + (x[:, 1:4] @ self.out).reshape(b, n, 3)
