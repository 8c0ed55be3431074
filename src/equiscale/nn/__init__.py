"""equiscale.nn"""

from equiscale.nn.attention import EquivariantAttention
from equiscale.nn.gaunt import DegreeLinear, GauntConv, GauntManyBody, GauntSelfMix
from equiscale.nn.hyena import (
    HyenaOperator,
    ImplicitFilter,
    SE3HyenaBlock,
    SE3HyenaOperator,
    VectorLinear,
    VectorRMSNorm,
)

__all__ = [
    "DegreeLinear",
    "GauntConv",
    "GauntManyBody",
    "GauntSelfMix",
    "EquivariantAttention",
    "HyenaOperator",
    "ImplicitFilter",
    "SE3HyenaBlock",
    "SE3HyenaOperator",
    "VectorLinear",
    "VectorRMSNorm",
]
