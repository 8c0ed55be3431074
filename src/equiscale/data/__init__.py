"""equiscale.data: data sets that work offline (generators, loaders, on-disk cache)."""

from equiscale.data.nbody import NBodyTrajectories, charged_particles, nbody_baselines

__all__ = ["NBodyTrajectories", "charged_particles", "nbody_baselines"]
