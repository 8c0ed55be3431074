"""Charged n-body (EGNN protocol): from frame 30 (positions, velocities, charges) predict the
positions at frame 40. Loss and metric: MSE over coordinates."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset, default_collate

from equiscale.provenance import save_figure
from equiscale.train.task import Batch, SymmetrySpec, TaskData

__all__ = ["NBodyDataset", "nbody_task", "PUBLISHED_NBODY_MSE", "NBODY_SYMMETRY"]

#: Published test MSE on charged n-body (3000 training trajectories), DESIGN.md.
PUBLISHED_NBODY_MSE: dict[str, float] = {
    "Linear": 0.0819,
    "SE(3)-Transformer": 0.0244,
    "TFN": 0.0155,
    "GNN": 0.0107,
    "Radial Field": 0.0104,
    "EGNN": 0.0071,
    "Frame Averaging": 0.0057,
    "SEGNN": 0.0043,
    "PONITA": 0.0043,
    "CGENN": 0.0039,
    "Multivector Neurons": 0.0035,
}


#: How the model's inputs and its prediction transform (equiscale.testing types; particles on axis 1).
NBODY_SYMMETRY = SymmetrySpec(
    inputs={"loc": "position", "vel": "vector", "charges": "scalar"}, output="position", node_dim=1
)


class NBodyDataset(Dataset):
    """Samples ``{"loc", "vel", "charges", "target"}``: loc/vel ``[5, 3]`` at ``frame_in``,
    charges ``[5]``, target positions ``[5, 3]`` at ``frame_out``."""

    def __init__(
        self,
        split: str,
        n: int | None = None,
        frame_in: int = 30,
        frame_out: int = 40,
        cache_dir: str | None = None,
        dtype: torch.dtype = torch.float32,
        field: list[float] | None = None,
    ) -> None:
        from equiscale.data.nbody import charged_particles

        traj = charged_particles(split=split, cache_dir=cache_dir, n=n, progress=True, field=field)
        total = traj.loc.shape[0]
        frames = traj.loc.shape[1]
        for name, f in (("frame_in", frame_in), ("frame_out", frame_out)):
            if not 0 <= f < frames:
                raise ValueError(f"{name} must be in 0..{frames - 1}, got {f}")
        k = total if n is None else n
        self.frame_in, self.frame_out = frame_in, frame_out
        self.loc = torch.as_tensor(traj.loc[:k, frame_in], dtype=dtype)
        self.vel = torch.as_tensor(traj.vel[:k, frame_in], dtype=dtype)
        self.charges = torch.as_tensor(traj.charges[:k], dtype=dtype)
        self.target = torch.as_tensor(traj.loc[:k, frame_out], dtype=dtype)

    def __len__(self) -> int:
        return self.loc.shape[0]

    def __getitem__(self, i: int) -> Batch:
        return {"loc": self.loc[i], "vel": self.vel[i], "charges": self.charges[i], "target": self.target[i]}

    def __getitems__(self, idx: list[int]) -> list[Batch]:  # one gather per batch, not per sample
        t = torch.as_tensor(idx)
        return [
            {
                "loc": self.loc[t],
                "vel": self.vel[t],
                "charges": self.charges[t],
                "target": self.target[t],
                "_batched": torch.ones(()),
            }
        ]


def _collate(samples: list[Batch]) -> Batch:
    if len(samples) == 1 and "_batched" in samples[0]:
        return {k: v for k, v in samples[0].items() if k != "_batched"}
    return default_collate(samples)


def _mse(pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    return torch.mean((pred - batch["target"]) ** 2)


def nbody_task(
    n_train: int = 3000,
    n_val: int | None = None,
    n_test: int | None = None,
    frame_in: int = 30,
    frame_out: int = 40,
    cache_dir: str | None = None,
    field: list[float] | None = None,
) -> TaskData:
    """The EGNN n-body task: first ``n_train`` of the 10000 training trajectories (EGNN: 3000),
    the 2000 validation and 2000 test trajectories (or their first ``n_val`` / ``n_test``).

    ``field``: a constant external field ``[E_x, E_y, E_z]`` in the simulation (the
    symmetry-broken variant, see :mod:`equiscale.data.nbody`); None: the standard data.
    The task declares its symmetry (:data:`NBODY_SYMMETRY`): positions and velocities in,
    positions out, particles on axis 1.
    """
    kw = {"frame_in": frame_in, "frame_out": frame_out, "cache_dir": cache_dir, "field": field}
    train = NBodyDataset("train", n_train, **kw)
    val = NBodyDataset("valid", n_val, **kw)
    test = NBodyDataset("test", n_test, **kw)
    broken = "" if field is None else f", external field {list(field)}"
    return TaskData(
        train=train,
        val=val,
        test=test,
        collate=_collate,
        loss=_mse,
        symmetry=NBODY_SYMMETRY,
        metrics=lambda pred, batch: {"mse": _mse(pred, batch)},
        monitor="mse",
        published=dict(PUBLISHED_NBODY_MSE),
        describe=f"charged n-body{broken}, frame {frame_in} -> {frame_out}, "
        f"{len(train)}/{len(val)}/{len(test)} train/val/test",
        plot=plot_nbody,
        baselines=lambda: _baselines(test),
    )


def _baselines(test: NBodyDataset) -> dict[str, float]:
    """Untrained references on the same test systems: copy the input frame; constant velocity."""
    dt_frames = (test.frame_out - test.frame_in) * 100 * 0.001  # 100 steps of dt = 0.001 per frame
    copy = torch.mean((test.loc - test.target) ** 2).item()
    const_vel = torch.mean((test.loc + dt_frames * test.vel - test.target) ** 2).item()
    return {"untrained: copy frame": copy, "untrained: constant velocity": const_vel}


def plot_nbody(model: torch.nn.Module, task: TaskData, out_dir: str | Path) -> list[str]:
    """Learning curves and predicted vs true trajectories on the first test systems."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equiscale.train.plots import plot_learning_curves

    out = Path(out_dir)
    paths = [plot_learning_curves(out / "logs", out / "learning_curve.png", metric="mse")]
    batch = task.collate([task.test[i] for i in range(4)])
    model = model.eval()
    with torch.no_grad():
        pred = model({k: v.to(next(model.parameters()).device) for k, v in batch.items()}).cpu()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for s, ax in enumerate(axes):
        for p in range(batch["loc"].shape[1]):
            c = f"C{p}"
            x0, x1, xp = batch["loc"][s, p], batch["target"][s, p], pred[s, p]
            ax.plot([x0[0], x1[0]], [x0[1], x1[1]], color=c, lw=1, alpha=0.5)
            ax.scatter(*x0[:2], color=c, marker="o", s=18)
            ax.scatter(*x1[:2], color=c, marker="*", s=60)
            ax.scatter(*xp[:2], color=c, marker="x", s=40)
        mse = torch.mean((pred[s] - batch["target"][s]) ** 2).item()
        ax.set_title(f"test system {s}: MSE {mse:.4f}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
    axes[0].legend(
        handles=[
            plt.Line2D([], [], marker="o", ls="", color="k", label="frame 30"),
            plt.Line2D([], [], marker="*", ls="", color="k", label="frame 40 (true)"),
            plt.Line2D([], [], marker="x", ls="", color="k", label="frame 40 (predicted)"),
        ],
        fontsize=7,
        loc="best",
    )
    fig.suptitle("charged n-body: predicted vs true positions (x-y projection)")
    fig.tight_layout()
    path = out / "trajectories.png"
    save_figure(fig, path)
    paths.append(str(path))
    return paths
