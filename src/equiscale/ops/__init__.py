"""equiscale.ops"""

from equiscale.ops._wigner6j_conv import Wigner6jConv, conv_paths, edge_reference, wigner6j_conv
from equiscale.ops.coulomb import coulomb_energy, coulomb_energy_mesh
from equiscale.ops.gaunt import (
    CGOddPaths,
    GauntPowers,
    GauntProduct,
    GauntTensorProduct,
    gaunt_power,
    gaunt_product,
    gaunt_reference,
)
from equiscale.ops.long_conv import (
    fft_conv,
    fft_conv_reference,
    fft_cross_conv,
    fft_cross_conv_reference,
    fft_cross_dot_conv,
    fft_dot_conv,
    fft_dot_conv_reference,
    next_fast_size,
)
from equiscale.ops.neighbors import Neighbors, edge_vectors, neighbor_list

__all__ = [
    "coulomb_energy",
    "coulomb_energy_mesh",
    "CGOddPaths",
    "GauntPowers",
    "GauntProduct",
    "GauntTensorProduct",
    "gaunt_power",
    "gaunt_product",
    "gaunt_reference",
    "fft_conv",
    "fft_conv_reference",
    "fft_cross_conv",
    "fft_cross_conv_reference",
    "fft_cross_dot_conv",
    "fft_dot_conv",
    "fft_dot_conv_reference",
    "next_fast_size",
    "Neighbors",
    "edge_vectors",
    "neighbor_list",
    "Wigner6jConv",
    "conv_paths",
    "edge_reference",
    "wigner6j_conv",
]
