"""equiscale.models"""

from equiscale.models.equivariant_transformer import EquivariantTransformer
from equiscale.models.se3_hyena import HyenaNet, SE3HyenaNet

__all__ = ["EquivariantTransformer", "HyenaNet", "SE3HyenaNet"]
