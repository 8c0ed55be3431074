"""equiscale.nn"""

from equiscale.nn.hyena import (
    HyenaOperator,
    ImplicitFilter,
    SE3HyenaBlock,
    SE3HyenaOperator,
    VectorLinear,
    VectorRMSNorm,
)

__all__ = [
    "HyenaOperator",
    "ImplicitFilter",
    "SE3HyenaBlock",
    "SE3HyenaOperator",
    "VectorLinear",
    "VectorRMSNorm",
]
