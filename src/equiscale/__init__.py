"""equiscale: SE(3)/E(3)-equivariant learning at scale.

Three operators, each exact against a slow reference path and benchmarked against the operator it
replaces:

- ``GauntTensorProduct``: products of spherical functions in O(L^3) (instead of O(L^6)).
- ``Wigner6jConv``: equivariant graph convolution with tensor products on nodes, not edges.
- ``fft_conv`` / ``fft_cross_conv`` / ``SE3HyenaOperator``: equivariant long convolutions,
  O(N log N) global context.

Feature layout: ``[..., (L+1)^2, C]`` (e3nn real spherical harmonics, e3nn m-order, channels last).
"""

__version__ = "0.1.0"

from equiscale.models.canonicalize import Canonicalize  # noqa: E402
from equiscale.models.e2former import E2Former  # noqa: E402
from equiscale.models.egnn import EGNN  # noqa: E402
from equiscale.models.equivariant_transformer import EquivariantTransformer  # noqa: E402
from equiscale.models.frame_averaging import FrameAveraging  # noqa: E402
from equiscale.models.gaunt_net import GauntNet  # noqa: E402
from equiscale.models.se3_hyena import HyenaNet, SE3HyenaNet  # noqa: E402
from equiscale.nn.attention import EquivariantAttention  # noqa: E402
from equiscale.nn.gaunt import GauntConv, GauntManyBody, GauntSelfMix  # noqa: E402
from equiscale.nn.hyena import SE3HyenaOperator  # noqa: E402
from equiscale.ops import Wigner6jConv, edge_reference  # noqa: E402
from equiscale.ops.gaunt import GauntTensorProduct, gaunt_power, gaunt_reference  # noqa: E402
from equiscale.ops.long_conv import (  # noqa: E402
    fft_conv,
    fft_cross_conv,
    fft_cross_dot_conv,
    fft_dot_conv,
)
from equiscale.ops.neighbors import neighbor_list  # noqa: E402
from equiscale.so3.wigner6j import wigner_6j  # noqa: E402

__all__ = ["__version__", "GauntTensorProduct", "gaunt_power", "gaunt_reference",
           "GauntConv", "GauntManyBody", "GauntSelfMix",
           "E2Former", "Wigner6jConv", "edge_reference", "neighbor_list", "wigner_6j",
           "fft_conv", "fft_cross_conv", "fft_cross_dot_conv", "fft_dot_conv",
           "SE3HyenaOperator", "EquivariantAttention", "SE3HyenaNet", "HyenaNet",
           "EquivariantTransformer", "FrameAveraging", "Canonicalize", "EGNN", "GauntNet"]
