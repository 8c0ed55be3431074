"""equiscale.data: data sets that work offline (generators, loaders, on-disk cache)."""

from equiscale.data.extxyz import Frame, read_extxyz, write_extxyz
from equiscale.data.nbody import NBodyTrajectories, charged_particles, nbody_baselines
from equiscale.data.recall import RecallDataset, make_recall_sample, recall_accuracy

__all__ = [
    "Frame",
    "read_extxyz",
    "write_extxyz",
    "NBodyTrajectories",
    "charged_particles",
    "nbody_baselines",
    "RecallDataset",
    "make_recall_sample",
    "recall_accuracy",
]
