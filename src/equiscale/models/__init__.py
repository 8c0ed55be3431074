"""equiscale.models"""

from equiscale.models.se3_hyena import HyenaNet, SE3HyenaNet

__all__ = ["HyenaNet", "SE3HyenaNet"]
