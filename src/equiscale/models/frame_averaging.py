"""Frame averaging (Puny et al., ICLR 2022): any backbone becomes E(3)- (or SE(3)-) equivariant.

For a point set ``X [N, 3]`` with centroid ``t`` and covariance ``C = (X - t)^T (X - t)`` with
eigenvectors ``U = [u_1 u_2 u_3]`` (eigenvalues ascending), the frames are ``F_s = U diag(s)`` for
the 8 sign choices ``s in {+-1}^3`` (``group="e3"``) or the 4 with ``det F_s = +1`` (``"se3"``). Under
``X -> X R^T + b`` the set ``{F_s}`` becomes ``{R F_s}``, so

    Phi(X) = mean_s  [ f((X - t) F_s, V F_s, ...) F_s^T + t ]

is exactly equivariant for *any* backbone ``f`` (vectors ``V`` enter as ``V F_s``, scalars unchanged,
the predicted point maps back with ``F_s^T`` and ``+ t``). Cost: ``|frames|`` backbone calls, run as
one batch of ``B * |frames|``.

``frames="sampled"``: in training mode one frame drawn at random per sample (1/8 of the cost;
equivariant in distribution), in eval mode all frames (exact).

Degenerate spectra. When two eigenvalues coincide (e.g. a regular polyhedron, collinear or
coincident points) the eigenvectors are not unique and the average is no longer exactly equivariant.
The wrapper stays well defined: the frame is computed in float64 and *detached* (``eigh``'s gradient
has ``1 / (lambda_i - lambda_j)`` terms that are infinite there; the frame is a function of the input
only, so parameter gradients are exact), outputs are always finite, and :meth:`frames` reports a
``degenerate`` flag per sample (relative eigen-gap below ``gap_tol``) so callers can see it.
Permutation behaviour is the backbone's (the frame itself is permutation-invariant).

``forward(batch)`` accepts the recall (``pos``) and n-body (``loc``, ``vel``, ``charges``) layouts of
:class:`~equiscale.models.se3_hyena.SE3HyenaNet`; the backbone must return points.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor, nn

Batch = dict[str, Tensor]

__all__ = ["FrameAveraging", "pca_frames"]

POSITION_KEYS = ("pos", "loc")
VECTOR_KEYS = ("vel", "vec")
SHARED_KEYS = ("edge_index",)  # passed to the backbone unchanged (no batch axis)


def _signs(group: str) -> Tensor:
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=3)), dtype=torch.float64)
    return signs  # [8, 3]


def pca_frames(pos: Tensor, group: str = "e3", gap_tol: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """Frames of point sets ``pos [B, N, 3]``.

    Returns:
        ``F [B, K, 3, 3]`` (K = 8 for ``"e3"``, 4 for ``"se3"``; columns are the frame axes),
        centroids ``t [B, 1, 3]`` and ``degenerate [B]`` (bool). Float64, detached.
    """
    if group not in ("e3", "se3"):
        raise ValueError(f"group must be 'e3' or 'se3', got {group!r}")
    if pos.dim() != 3 or pos.shape[-1] != 3:
        raise ValueError(f"pos must be [B, N, 3], got {tuple(pos.shape)}")
    x = pos.detach().to(torch.float64)
    t = x.mean(1, keepdim=True)
    xc = x - t
    cov = xc.transpose(1, 2) @ xc  # [B, 3, 3]
    evals, u = torch.linalg.eigh(cov)  # ascending
    scale = evals.abs().amax(-1).clamp_min(1e-300)
    gaps = (evals[:, 1:] - evals[:, :-1]).amin(-1)
    degenerate = gaps <= gap_tol * scale
    signs = _signs(group).to(x.device)  # [8, 3]
    frames = u[:, None] * signs[None, :, None, :]  # [B, 8, 3, 3]: column j times s_j
    if group == "se3":
        det_u = torch.linalg.det(u)  # [B], +-1
        keep = (det_u[:, None] * signs.prod(-1)[None]) > 0  # [B, 8], exactly 4 per row
        frames = frames[keep].reshape(x.shape[0], 4, 3, 3)
    return frames, t, degenerate


class FrameAveraging(nn.Module):
    """Wrap a registered model (``backbone``, built with ``backbone_args``) with frame averaging.

    Args:
        backbone: a name in :data:`equiscale.registry.MODELS` (e.g. ``"hyena"``, ``"gnn"``).
        backbone_args: its constructor arguments.
        frames: ``"all"`` (exact) or ``"sampled"`` (one random frame per sample while training).
        group: ``"e3"`` (8 frames: rotations and reflections) or ``"se3"`` (4 frames).
        gap_tol: relative eigen-gap below which a sample is flagged degenerate.
    """

    def __init__(
        self,
        backbone: str = "hyena",
        backbone_args: dict[str, Any] | None = None,
        *,
        frames: str = "all",
        group: str = "e3",
        gap_tol: float = 1e-6,
    ) -> None:
        super().__init__()
        from equiscale import registry

        if frames not in ("all", "sampled"):
            raise ValueError(f"frames must be 'all' or 'sampled', got {frames!r}")
        if group not in ("e3", "se3"):
            raise ValueError(f"group must be 'e3' or 'se3', got {group!r}")
        if backbone == "frame_averaging":
            raise ValueError("backbone must not be frame_averaging itself")
        self.backbone = registry.load(registry.MODELS, backbone, "model")(**(backbone_args or {}))
        self.frame_mode, self.group, self.gap_tol = frames, group, gap_tol

    def frames(self, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(F [B, K, 3, 3], t [B, 1, 3], degenerate [B])`` in ``pos``'s dtype (see :func:`pca_frames`)."""
        f, t, degenerate = pca_frames(pos, self.group, self.gap_tol)
        if self.frame_mode == "sampled" and self.training:
            pick = torch.randint(f.shape[1], (f.shape[0],), device=f.device)
            f = f[torch.arange(f.shape[0], device=f.device), pick][:, None]  # [B, 1, 3, 3]
        return f.to(pos.dtype), t.to(pos.dtype), degenerate

    def forward(self, batch: Batch) -> Tensor:
        pos_key = next((k for k in POSITION_KEYS if k in batch), None)
        if pos_key is None:
            raise ValueError(f"batch must hold one of {POSITION_KEYS}, got keys {sorted(batch)}")
        pos = batch[pos_key]
        weight = next(self.backbone.parameters(), None)
        if weight is not None and pos.device != weight.device:
            raise ValueError(f"{pos_key} must be on the model's device {weight.device}, got {pos.device}")
        b = pos.shape[0]
        f, t, _ = self.frames(pos)
        k = f.shape[1]
        new: Batch = {}
        for key, val in batch.items():
            if key == pos_key:
                x = torch.einsum("bni,bkij->bknj", val - t, f)  # coordinates in each frame
                new[key] = x.reshape(b * k, *val.shape[1:])
            elif key in VECTOR_KEYS:
                x = torch.einsum("bn...i,bkij->bkn...j", val, f)
                new[key] = x.reshape(b * k, *val.shape[1:])
            elif key in SHARED_KEYS or not isinstance(val, Tensor) or val.dim() == 0:
                new[key] = val
            elif val.shape[0] == b:
                new[key] = val.repeat_interleave(k, dim=0)
            else:
                new[key] = val
        out = self.backbone(new)  # points in frame coordinates, [B K, ..., 3]
        out = out.reshape(b, k, *out.shape[1:])
        back = torch.einsum("bk...j,bkij->bk...i", out, f)  # o F^T
        t_out = t.reshape(b, *([1] * (out.dim() - 3)), 3)  # broadcast over points
        return back.mean(1) + t_out
