"""equiscale.models"""

from equiscale.models.canonicalize import Canonicalize
from equiscale.models.e2former import E2Former
from equiscale.models.equivariant_transformer import EquivariantTransformer
from equiscale.models.frame_averaging import FrameAveraging
from equiscale.models.gaunt_net import GauntNet
from equiscale.models.hybrid import HybridDynamics, HybridNet
from equiscale.models.se3_hyena import HyenaNet, SE3HyenaNet

__all__ = [
    "Canonicalize",
    "E2Former",
    "EquivariantTransformer",
    "FrameAveraging",
    "GauntNet",
    "HybridDynamics",
    "HybridNet",
    "HyenaNet",
    "SE3HyenaNet",
]
