"""equiscale: SE(3)/E(3)-equivariant learning at scale.

Three operators, each exact against a slow reference path and benchmarked against the operator it
replaces:

- ``GauntTensorProduct``: products of spherical functions in O(L^3) (instead of O(L^6)).
- ``Wigner6jConv``: equivariant graph convolution with tensor products on nodes, not edges.
- ``fft_conv`` / ``fft_cross_conv`` / ``SE3HyenaOperator``: equivariant long convolutions,
  O(N log N) global context.

Feature layout: ``[..., (L+1)^2, C]`` (e3nn real spherical harmonics, e3nn m-order, channels last).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The front: each public name -> the module that defines it. Imported on first use (PEP 562), so
# `import equiscale` is instant and loads neither torch nor any model until one is asked for;
# `from equiscale import GauntTensorProduct` and `equiscale.GauntTensorProduct` work as usual.
_EXPORTS: dict[str, str] = {
    "GauntTensorProduct": "equiscale.ops.gaunt",
    "gaunt_power": "equiscale.ops.gaunt",
    "gaunt_reference": "equiscale.ops.gaunt",
    "GauntConv": "equiscale.nn.gaunt",
    "GauntManyBody": "equiscale.nn.gaunt",
    "GauntSelfMix": "equiscale.nn.gaunt",
    "E2Former": "equiscale.models.e2former",
    "Wigner6jConv": "equiscale.ops._wigner6j_conv",
    "edge_reference": "equiscale.ops._wigner6j_conv",
    "neighbor_list": "equiscale.ops.neighbors",
    "wigner_6j": "equiscale.so3.wigner6j",
    "fft_conv": "equiscale.ops.long_conv",
    "fft_cross_conv": "equiscale.ops.long_conv",
    "fft_cross_dot_conv": "equiscale.ops.long_conv",
    "fft_dot_conv": "equiscale.ops.long_conv",
    "SE3HyenaOperator": "equiscale.nn.hyena",
    "EquivariantAttention": "equiscale.nn.attention",
    "SE3HyenaNet": "equiscale.models.se3_hyena",
    "HyenaNet": "equiscale.models.se3_hyena",
    "EquivariantTransformer": "equiscale.models.equivariant_transformer",
    "FrameAveraging": "equiscale.models.frame_averaging",
    "Canonicalize": "equiscale.models.canonicalize",
    "EGNN": "equiscale.models.egnn",
    "GauntNet": "equiscale.models.gaunt_net",
    "HybridNet": "equiscale.models.hybrid",
}

__all__ = [
    "__version__",
    "GauntTensorProduct",
    "gaunt_power",
    "gaunt_reference",
    "GauntConv",
    "GauntManyBody",
    "GauntSelfMix",
    "E2Former",
    "Wigner6jConv",
    "edge_reference",
    "neighbor_list",
    "wigner_6j",
    "fft_conv",
    "fft_cross_conv",
    "fft_cross_dot_conv",
    "fft_dot_conv",
    "SE3HyenaOperator",
    "EquivariantAttention",
    "SE3HyenaNet",
    "HyenaNet",
    "EquivariantTransformer",
    "FrameAveraging",
    "Canonicalize",
    "EGNN",
    "GauntNet",
    "HybridNet",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; the same names, imported eagerly
    from equiscale.models.canonicalize import Canonicalize
    from equiscale.models.e2former import E2Former
    from equiscale.models.egnn import EGNN
    from equiscale.models.equivariant_transformer import EquivariantTransformer
    from equiscale.models.frame_averaging import FrameAveraging
    from equiscale.models.gaunt_net import GauntNet
    from equiscale.models.hybrid import HybridNet
    from equiscale.models.se3_hyena import HyenaNet, SE3HyenaNet
    from equiscale.nn.attention import EquivariantAttention
    from equiscale.nn.gaunt import GauntConv, GauntManyBody, GauntSelfMix
    from equiscale.nn.hyena import SE3HyenaOperator
    from equiscale.ops._wigner6j_conv import Wigner6jConv, edge_reference
    from equiscale.ops.gaunt import GauntTensorProduct, gaunt_power, gaunt_reference
    from equiscale.ops.long_conv import fft_conv, fft_cross_conv, fft_cross_dot_conv, fft_dot_conv
    from equiscale.ops.neighbors import neighbor_list
    from equiscale.so3.wigner6j import wigner_6j


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'equiscale' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
