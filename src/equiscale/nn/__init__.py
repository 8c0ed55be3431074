"""equiscale.nn"""

from equiscale.nn.attention import EquivariantAttention
from equiscale.nn.hyena import (
    HyenaOperator,
    ImplicitFilter,
    SE3HyenaBlock,
    SE3HyenaOperator,
    VectorLinear,
    VectorRMSNorm,
)

__all__ = [
    "EquivariantAttention",
    "HyenaOperator",
    "ImplicitFilter",
    "SE3HyenaBlock",
    "SE3HyenaOperator",
    "VectorLinear",
    "VectorRMSNorm",
]
